// Wire encoding of the Campus protocol: JSON text frames and binary output frames.
// The message types themselves are generated from the Rust `protocol` crate.
import {
  FRAME_KIND_OUTPUT,
  FRAME_OUTPUT_HEADER_LEN,
  type ClientMsg,
  type ErrorCode,
  type ServerMsg,
} from "./generated";

export * from "./generated";

/** A client message without its `id` (the connection assigns ids). */
export type Request = ClientMsg extends infer T ? (T extends unknown ? Omit<T, "id"> : never) : never;

/** The server message with the given `type`. */
export type ServerMsgOf<K extends ServerMsg["type"]> = Extract<ServerMsg, { type: K }>;

/** A refusal or failure reported by the server (WebSocket `error` or HTTP JSON error). */
export class CampusError extends Error {
  constructor(
    readonly code: ErrorCode | "disconnected" | "timeout" | "protocol",
    message: string,
    readonly retryAfterMs?: number,
    readonly currentVersion?: string,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = "CampusError";
  }
}

/** Serialise a client message as a JSON text frame. */
export function encodeClientMsg(msg: ClientMsg): string {
  return JSON.stringify(msg);
}

/** Parse a JSON text frame; `null` if it is not a tagged object. */
export function parseServerMsg(text: string): ServerMsg | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || typeof (v as { type?: unknown }).type !== "string") {
    return null;
  }
  return v as ServerMsg;
}

/** The echoed request id of a reply, if it has one. */
export function replyId(msg: ServerMsg): number | undefined {
  const id = (msg as { id?: unknown }).id;
  return typeof id === "number" ? id : undefined;
}

/** Turn an `error` message into a `CampusError`. */
export function errorFromMsg(msg: ServerMsgOf<"error">): CampusError {
  return new CampusError(msg.code, msg.message, msg.retry_after_ms, msg.current_version, msg.request_id);
}

/** Narrow a reply to the expected type, or throw a protocol error. */
export function expectMsg<K extends ServerMsg["type"]>(msg: ServerMsg, type: K): ServerMsgOf<K> {
  if (msg.type !== type) {
    throw new CampusError("protocol", `expected a ${type} reply, got ${msg.type}`);
  }
  return msg as ServerMsgOf<K>;
}

/** One decoded terminal output frame. */
export interface OutputFrame {
  /** Byte offset of `bytes[0]` in the session's output stream. */
  seq: number;
  /** The output bytes. */
  bytes: Uint8Array;
}

/** Decode a binary frame `[1][seq u64 BE][bytes]`; `null` if it is not an output frame. */
export function decodeOutputFrame(data: ArrayBuffer | Uint8Array): OutputFrame | null {
  const u8 = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (u8.length < FRAME_OUTPUT_HEADER_LEN || u8[0] !== FRAME_KIND_OUTPUT) return null;
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const seq = Number(view.getBigUint64(1, false));
  return { seq, bytes: u8.subarray(FRAME_OUTPUT_HEADER_LEN) };
}

/** Encode an output frame (used by tests and fake servers). */
export function encodeOutputFrame(seq: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_OUTPUT_HEADER_LEN + bytes.length);
  out[0] = FRAME_KIND_OUTPUT;
  new DataView(out.buffer).setBigUint64(1, BigInt(seq), false);
  out.set(bytes, FRAME_OUTPUT_HEADER_LEN);
  return out;
}

/**
 * Tracks the output offset this client has, so overlapping or repeated frames
 * (a replay after reattach) are written exactly once and gaps are reported.
 */
export class OutputCursor {
  /** Offset after the last byte accepted. */
  next = 0;

  /** Reset to a known offset (e.g. a fresh page starting from what the server keeps). */
  reset(next: number): void {
    this.next = next;
  }

  /**
   * Accept a frame: returns the bytes not seen before (possibly empty) and how
   * many bytes were skipped because the server no longer had them.
   */
  accept(frame: OutputFrame): { bytes: Uint8Array; gap: number } {
    const end = frame.seq + frame.bytes.length;
    if (end <= this.next) return { bytes: frame.bytes.subarray(0, 0), gap: 0 };
    let gap = 0;
    let bytes = frame.bytes;
    if (frame.seq < this.next) {
      bytes = bytes.subarray(this.next - frame.seq);
    } else if (frame.seq > this.next) {
      gap = frame.seq - this.next;
    }
    this.next = end;
    return { bytes, gap };
  }
}
