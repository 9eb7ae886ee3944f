// A document as far as it could be read. One that failed its own checks is still shown to the set-level
// checks, so that a file's problems are all reported at once; its unread parts are marked, never guessed.
import type { Document } from '../model/model.js';

/**
 * Parts of a refused document that could not be read, so that checks needing them are skipped:
 * `name` (it is not a target and claims nothing), a Service's `protocol` and `port`, a Service's
 * `versions` or a DestinationRule's `subsets` (their names are incomplete, so no subset can be said missing).
 */
export type Gap = 'name' | 'protocol' | 'port' | 'versions' | 'subsets';

/**
 * A field that could not be read, where the model wants a string (a destination's host, a subset's
 * version): no name is empty, so nothing matches it and the set-level checks skip it.
 */
export const UNREAD = '';

export interface Draft<T extends Document = Document> {
  doc: T;
  gaps: Set<Gap>;
}

/** A document with problems of its own, as far as it was read. */
export interface Refused {
  doc: Document;
  gaps: ReadonlySet<Gap>;
}

/** What validating one document gives: `ok` when it has no problem of its own (and then no gap). */
export interface Checked extends Refused {
  ok: boolean;
}
