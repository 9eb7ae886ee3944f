// etcd-resolver-peer: a Go gRPC client that resolves a meshlet service with etcd's own stock resolver
// (go.etcd.io/etcd/client/v3/naming/resolver), the way a Go app given `<UPSTREAM>_ADDR=etcd:///<prefix>/naming/<service>`
// would, and reads the same keys with the endpoints package's Manager. Tests drive it over stdin/stdout:
//
//	etcd-resolver-peer -etcd http://127.0.0.1:2379 -target-env GREETER_ADDR -method /meshlet.test.Who/Who
//
// stdin, one command a line        stdout, one JSON object a line
//
//	call N                           {"type":"calls","n":N,"counts":{"A":10,"B":10},"errors":{"Unavailable":0}}
//	list                             {"type":"list","endpoints":{"<key>":{"Addr":…,"Metadata":…}}}
//	quit                             (exits 0)
//	(any time)                       {"type":"watch","updates":[{"op":"add","key":…,"addr":…,"metadata":…}]}
//
// The method is called with an empty request and must answer with the server's id as raw bytes: a codec
// of plain bytes, so no generated protobuf code is needed on either side.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives *[]byte as is. Named "proto" so the content-type stays application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// out writes whole JSON lines; the watch goroutine and the command loop share it.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) send(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-resolver-peer: stdout: %v\n", err)
		os.Exit(1)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "etcd-resolver-peer: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	etcdURLs := flag.String("etcd", "http://127.0.0.1:2379", "etcd client URLs, comma-separated")
	target := flag.String("target", "", "the gRPC target, e.g. etcd:////meshlet/naming/greeter")
	targetEnv := flag.String("target-env", "", "read the target from this environment variable (as an app given <UPSTREAM>_ADDR does)")
	method := flag.String("method", "/meshlet.test.Who/Who", "full gRPC method name to call")
	callTimeout := flag.Duration("call-timeout", 2*time.Second, "deadline of each call")
	flag.Parse()

	if *targetEnv != "" {
		*target = os.Getenv(*targetEnv)
		if *target == "" {
			fail("environment variable %s is empty; expected etcd:///<prefix>/naming/<service>", *targetEnv)
		}
	}
	if !strings.HasPrefix(*target, "etcd:///") {
		fail("target %q: expected etcd:///<prefix>/naming/<service>", *target)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*etcdURLs, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		fail("etcd client: %v", err)
	}
	defer cli.Close()

	builder, err := resolver.NewBuilder(cli)
	if err != nil {
		fail("etcd resolver: %v", err)
	}
	// round_robin over every endpoint the resolver reports (gRPC's default, pick_first, would stick to one).
	conn, err := grpc.NewClient(*target,
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		fail("grpc.NewClient(%q): %v", *target, err)
	}
	defer conn.Close()

	// As the resolver's Build does: the URL path less one "/", so etcd:////meshlet/naming/x → /meshlet/naming/x.
	u, err := url.Parse(*target)
	if err != nil {
		fail("target %q: %v", *target, err)
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	manager, err := endpoints.NewManager(cli, prefix)
	if err != nil {
		fail("endpoints.NewManager(%q): %v", prefix, err)
	}

	o := &out{enc: json.NewEncoder(os.Stdout)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := manager.NewWatchChannel(ctx)
	if err != nil {
		fail("endpoints watch of %q: %v", prefix, err)
	}
	go func() {
		for ups := range watch {
			list := make([]map[string]any, 0, len(ups))
			for _, u := range ups {
				op := "add"
				if u.Op == endpoints.Delete {
					op = "delete"
				}
				list = append(list, map[string]any{"op": op, "key": u.Key, "addr": u.Endpoint.Addr, "metadata": u.Endpoint.Metadata})
			}
			o.send(map[string]any{"type": "watch", "updates": list})
		}
	}()
	o.send(map[string]any{"type": "ready", "target": *target, "prefix": prefix})

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "call":
			n := 1
			if len(fields) > 1 {
				if n, err = strconv.Atoi(fields[1]); err != nil || n < 1 {
					o.send(map[string]any{"type": "error", "error": fmt.Sprintf("call %q: expected a count >= 1", fields[1])})
					continue
				}
			}
			o.send(calls(conn, *method, n, *callTimeout))
		case "list":
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			eps, err := manager.List(lctx)
			lcancel()
			if err != nil {
				o.send(map[string]any{"type": "error", "error": "list: " + err.Error()})
				continue
			}
			o.send(map[string]any{"type": "list", "endpoints": eps})
		case "quit":
			return
		default:
			o.send(map[string]any{"type": "error", "error": fmt.Sprintf("unknown command %q (call N | list | quit)", fields[0])})
		}
	}
}

// calls makes n unary calls one after another and counts the answers by server id and the failures by code.
func calls(conn *grpc.ClientConn, method string, n int, timeout time.Duration) map[string]any {
	counts := map[string]int{}
	errs := map[string]int{}
	last := ""
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		req, resp := []byte{}, []byte{}
		err := conn.Invoke(ctx, method, &req, &resp)
		cancel()
		if err != nil {
			st := status.Convert(err)
			errs[st.Code().String()]++
			last = st.Message()
			continue
		}
		counts[string(resp)]++
	}
	r := map[string]any{"type": "calls", "n": n, "counts": counts, "errors": errs}
	if last != "" {
		r["lastError"] = last
	}
	return r
}
