// Fakes of the loop's other dependencies (desired-state source, state store), recording into the shared op log.
import type { DesiredEntry, DesiredSource, PrefixSnapshot } from '../../agent/adapters/etcd/etcd-source.js';
import { StateStore, type AgentState } from '../../agent/adapters/files/state-store.js';
import { parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import { toEtcdEntry } from '../../agent/core/documents/etcd-docs.js';

/** Desired state as etcd would hand it over: every put or delete is one revision. */
export class FakeSource implements DesiredSource {
  state = 'watching' as const;
  snap: PrefixSnapshot | undefined;
  revision = 0;
  entries = new Map<string, DesiredEntry>();

  constructor(private readonly prefix = '/meshlet') {}

  current() {
    return this.snap;
  }

  put(key: string, value: string) {
    this.revision++;
    this.entries.set(key, { key, value, modRevision: this.revision });
    this.snap = { revision: this.revision, entries: new Map(this.entries) };
  }

  delete(key: string) {
    this.revision++;
    this.entries.delete(key);
    this.snap = { revision: this.revision, entries: new Map(this.entries) };
  }

  load(yaml: string) {
    for (const raw of parseYamlDocuments('fixture', yaml, [])) {
      const e = toEtcdEntry(this.prefix, raw);
      this.put(e.key, e.value);
    }
  }
}

/** The real state store (state.json in a temp dir), logging `save applied <revision>` for every save. */
export class RecordingStateStore extends StateStore {
  constructor(dir: string, private readonly ops: string[]) {
    super(dir);
  }

  override async save(state: AgentState): Promise<void> {
    this.ops.push(`save applied ${state.appliedRevision ?? '-'}`);
    await super.save(state);
  }
}
