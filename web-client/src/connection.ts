// The WebSocket to `campus serve`: request/response by id, reconnect with
// exponential backoff and jitter, re-attach with since_seq, binary output
// frames deduplicated by offset, batched acks for flow control, and an
// application-level ping that notices a dead network path without a close.
import {
  CampusError,
  OutputCursor,
  decodeOutputFrame,
  encodeClientMsg,
  errorFromMsg,
  parseServerMsg,
  replyId,
  type ClientMsg,
  type Request,
  type ServerMsg,
  type ServerMsgOf,
} from "./protocol";

/** The subset of the browser WebSocket this module uses (tests pass a fake). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes queued by `send` but not yet handed to the network. */
  readonly bufferedAmount?: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Timer functions, injectable for tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

/** What the connection banner shows. */
export type ConnState =
  | { kind: "connecting"; attempt: number }
  | { kind: "open" }
  | { kind: "reconnecting"; attempt: number; retryAt: number; lastCode?: number }
  | { kind: "closed"; reason: CloseReason; detail?: string };

/**
 * Why the connection stopped for good: logged out here, the session ended
 * (4001), an administrator ended it (4011), the account opened more
 * connections than the server allows and this, the oldest, was closed (4012;
 * not retried, or two tabs would keep closing each other), or the server
 * signed this token out (4013: logout elsewhere, password or role change,
 * account disabled; `detail` carries its reason).
 */
export type CloseReason = "logged_out" | "unauthorized" | "kicked" | "replaced" | "revoked";

/** Backoff parameters. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Default backoff: 0.5 s doubling up to 15 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000 };

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential with "equal
 * jitter" — half the capped exponential plus a random half — so a whole class
 * reconnecting after a server restart spreads out but never retries instantly.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number): number {
  const cap = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Options of a connection. */
export interface ConnectionOptions {
  url: string;
  createSocket?: (url: string) => SocketLike;
  timers?: Timers;
  random?: () => number;
  backoff?: BackoffOptions;
  /** A reply not received within this many ms rejects with `timeout`. */
  requestTimeoutMs?: number;
  /** Send an ack once this many consumed bytes are unacknowledged. */
  ackEveryBytes?: number;
  /** Otherwise ack consumed bytes after this many ms. */
  ackDelayMs?: number;
  /** Called when the socket closes before `hello`: false means "not logged in". */
  checkAuth?: () => Promise<boolean>;
  /**
   * Send a `ping` this often (0 = never). A socket that has not received
   * anything since the previous ping is dead: browsers do not expose WebSocket
   * ping frames, and a lost network path (Wi-Fi gone, laptop lid) closes
   * nothing, so without this the IDE would sit frozen. Silence is noticed
   * within two intervals (10 s by default).
   */
  pingIntervalMs?: number;
}

/** Default liveness ping interval (12 pings a minute; the server allows 60). */
export const DEFAULT_PING_INTERVAL_MS = 5_000;

/** Events a connection emits. */
export interface ConnEvents {
  state: ConnState;
  hello: ServerMsgOf<"hello">;
  /** Every server message that is not a reply to a request of ours (events, broadcasts). */
  message: ServerMsg;
  /** Output bytes seen for the first time, with the gap (bytes lost) before them. */
  output: { seq: number; bytes: Uint8Array; gap: number };
  /** The reply to the automatic attach after every (re)connect. */
  attached: ServerMsgOf<"attached">;
}

type Handler<T> = (v: T) => void;

interface Pending {
  resolve: (m: ServerMsg) => void;
  reject: (e: CampusError) => void;
  timer: unknown;
}

const OPEN = 1;

/** A self-healing connection to the server. */
export class Connection {
  state: ConnState = { kind: "connecting", attempt: 0 };
  hello: ServerMsgOf<"hello"> | null = null;
  readonly cursor = new OutputCursor();

  private socket: SocketLike | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private handlers: { [K in keyof ConnEvents]?: Set<Handler<ConnEvents[K]>> } = {};
  private attempt = 0;
  private retryTimer: unknown = null;
  private stopped = false;
  private consumedSeq = 0;
  private ackedSeq = 0;
  private ackTimer: unknown = null;
  private holdNextReconnectMs: number | null = null;
  private heartbeatTimer: unknown = null;
  /** When the current socket last delivered anything. */
  private lastHeard = 0;
  /** When the last ping went out on the current socket (null: none yet). */
  private lastPingAt: number | null = null;
  /** `bufferedAmount` at the last heartbeat (an upload in progress is not silence). */
  private lastBuffered = 0;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly createSocket: (url: string) => SocketLike;

  constructor(private readonly opts: ConnectionOptions) {
    this.timers = opts.timers ?? {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
      now: () => Date.now(),
    };
    this.random = opts.random ?? Math.random;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.createSocket =
      opts.createSocket ??
      ((url) => {
        const ws = new WebSocket(url);
        return ws as unknown as SocketLike;
      });
  }

  /** Subscribe to an event; returns an unsubscribe function. */
  on<K extends keyof ConnEvents>(event: K, fn: Handler<ConnEvents[K]>): () => void {
    let set = this.handlers[event] as Set<Handler<ConnEvents[K]>> | undefined;
    if (!set) {
      set = new Set();
      (this.handlers as Record<string, unknown>)[event] = set;
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  private emit<K extends keyof ConnEvents>(event: K, v: ConnEvents[K]): void {
    const set = this.handlers[event] as Set<Handler<ConnEvents[K]>> | undefined;
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(v);
      } catch (e) {
        console.error(`campus: ${event} handler failed`, e);
      }
    }
  }

  private setState(s: ConnState): void {
    this.state = s;
    this.emit("state", s);
  }

  /** True when the socket is open and `hello` has arrived. */
  get isOpen(): boolean {
    return this.state.kind === "open";
  }

  /** Open the socket (first connect). */
  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Close for good (logout, or leaving the view). */
  close(reason: CloseReason = "logged_out", detail?: string): void {
    this.stopped = true;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopHeartbeat();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      s.close(1000, reason);
    }
    this.failPending();
    this.setState(detail ? { kind: "closed", reason, detail } : { kind: "closed", reason });
  }

  /**
   * Drop the socket as a network failure would (the reconnect logic then runs);
   * `holdMs` delays the reconnect. Used by the end-to-end tests and handy when
   * debugging from the console.
   */
  dropForTest(holdMs = 0): void {
    this.holdNextReconnectMs = holdMs;
    this.socket?.close(4000, "dropped by client");
  }

  private connect(): void {
    this.setState(
      this.attempt === 0
        ? { kind: "connecting", attempt: 0 }
        : { kind: "connecting", attempt: this.attempt },
    );
    let socket: SocketLike;
    try {
      socket = this.createSocket(this.opts.url);
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let gotHello = false;
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.lastHeard = this.timers.now();
      if (typeof ev.data === "string") {
        const msg = parseServerMsg(ev.data);
        if (!msg) return;
        if (msg.type === "hello") {
          gotHello = true;
          this.onHello(msg);
          return;
        }
        this.onMessage(msg);
      } else if (ev.data instanceof ArrayBuffer || ev.data instanceof Uint8Array) {
        const frame = decodeOutputFrame(ev.data);
        if (!frame) return;
        const { bytes, gap } = this.cursor.accept(frame);
        if (bytes.length > 0 || gap > 0) {
          this.emit("output", { seq: this.cursor.next - bytes.length, bytes, gap });
        }
      }
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopHeartbeat();
      this.failPending();
      if (this.stopped) return;
      if (ev.code === 4001) {
        this.close("unauthorized");
        return;
      }
      if (ev.code === 4011) {
        this.close("kicked");
        return;
      }
      if (ev.code === 4013) {
        // Signed out by the server (logout in another tab, password or role
        // change, account disabled): its reason says which; never reconnect.
        this.close("revoked", ev.reason || undefined);
        return;
      }
      if (ev.code === 4012) {
        this.close("replaced");
        return;
      }
      if (!gotHello && this.opts.checkAuth) {
        // A refused upgrade looks like any network failure; ask HTTP whether
        // we are still logged in before retrying forever.
        this.opts.checkAuth().then(
          (ok) => (ok ? this.scheduleReconnect(ev.code) : this.close("unauthorized")),
          () => this.scheduleReconnect(ev.code),
        );
        return;
      }
      this.scheduleReconnect(ev.code);
    };
    socket.onerror = () => {
      /* onclose follows and handles it */
    };
  }

  private scheduleReconnect(code: number | undefined, minDelayMs = 0): void {
    if (this.stopped || this.retryTimer !== null) return;
    let delay = Math.max(minDelayMs, backoffDelay(this.attempt, this.backoff, this.random));
    if (this.holdNextReconnectMs !== null) {
      delay = this.holdNextReconnectMs;
      this.holdNextReconnectMs = null;
    }
    this.attempt += 1;
    this.setState({
      kind: "reconnecting",
      attempt: this.attempt,
      retryAt: this.timers.now() + delay,
      lastCode: code,
    });
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  /** Reconnect now instead of waiting for the backoff timer ("Retry now" button). */
  retryNow(): void {
    if (this.retryTimer === null || this.stopped) return;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (every <= 0) return;
    this.lastPingAt = null;
    this.lastBuffered = 0;
    const tick = () => {
      this.heartbeatTimer = null;
      const socket = this.socket;
      if (!socket) return;
      const buffered = socket.bufferedAmount ?? 0;
      // Still sending a large message: the server reads it before our ping,
      // so its answer waits; draining is progress, not silence.
      const draining = buffered > 0 && buffered < this.lastBuffered;
      this.lastBuffered = buffered;
      if (this.lastPingAt !== null && this.lastHeard < this.lastPingAt && !draining) {
        this.dropDead(socket);
        return;
      }
      if (socket.readyState === OPEN) socket.send(encodeClientMsg({ type: "ping" }));
      this.lastPingAt = this.timers.now();
      this.heartbeatTimer = this.timers.setTimeout(tick, every);
    };
    this.heartbeatTimer = this.timers.setTimeout(tick, every);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== null) this.timers.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /**
   * Nothing arrived for a whole ping interval after a ping: the path is dead
   * even though no close came. Abandon the socket (its close handshake could
   * not complete anyway) and reconnect as after a close; the re-attach
   * replays the output missed meanwhile.
   */
  private dropDead(socket: SocketLike): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.stopHeartbeat();
    socket.onclose = null;
    socket.onmessage = null;
    socket.onerror = null;
    try {
      socket.close(4000, "no answer from the server");
    } catch {
      /* already closing */
    }
    this.failPending();
    if (!this.stopped) this.scheduleReconnect(undefined);
  }

  private onHello(msg: ServerMsgOf<"hello">): void {
    this.hello = msg;
    this.attempt = 0;
    this.startHeartbeat();
    // Acks are per connection: tell the new one what we already consumed.
    this.ackedSeq = 0;
    this.setState({ kind: "open" });
    this.emit("hello", msg);
    this.request({ type: "attach", since_seq: this.cursor.next }).then(
      (reply) => {
        if (reply.type === "attached") this.emit("attached", reply);
        this.flushAck();
      },
      () => {
        /* the socket dropped again; the next hello retries */
      },
    );
  }

  private onMessage(msg: ServerMsg): void {
    const id = replyId(msg);
    if (id !== undefined) {
      const p = this.pending.get(id);
      if (p) {
        this.pending.delete(id);
        this.timers.clearTimeout(p.timer);
        if (msg.type === "error") p.reject(errorFromMsg(msg));
        else p.resolve(msg);
        // run_started / run_ended replies are also events the UI follows.
        if (msg.type === "run_started" || msg.type === "run_ended") this.emit("message", msg);
        return;
      }
    }
    if (msg.type === "shutdown") {
      // The server is going away: reconnect after its hint rather than hammering it.
      const s = this.socket;
      this.socket = null;
      this.stopHeartbeat();
      this.failPending();
      if (s) {
        s.onclose = null;
        s.close(1000, "server shutdown");
      }
      this.scheduleReconnect(1001, msg.reconnect_after_ms);
    }
    this.emit("message", msg);
  }

  private failPending(): void {
    for (const [, p] of this.pending) {
      this.timers.clearTimeout(p.timer);
      p.reject(new CampusError("disconnected", "The connection to the server was lost."));
    }
    this.pending.clear();
  }

  /** Send a request and wait for the reply carrying the same id. */
  request(msg: Request): Promise<ServerMsg> {
    return new Promise((resolve, reject) => {
      const socket = this.socket;
      if (!socket || socket.readyState !== OPEN || !this.hello) {
        reject(new CampusError("disconnected", "Not connected to the server."));
        return;
      }
      const id = this.nextId++;
      const timer = this.timers.setTimeout(() => {
        if (this.pending.delete(id)) {
          reject(new CampusError("timeout", "The server did not answer in time."));
        }
      }, this.opts.requestTimeoutMs ?? 30_000);
      this.pending.set(id, { resolve, reject, timer });
      socket.send(encodeClientMsg({ ...msg, id } as ClientMsg));
    });
  }

  /** Send a message that needs no reply (input, resize, interrupt); false if offline. */
  send(msg: Request): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN || !this.hello) return false;
    socket.send(encodeClientMsg(msg as ClientMsg));
    return true;
  }

  /**
   * The terminal has processed output up to offset `seq`. Acks are batched:
   * immediately once `ackEveryBytes` are pending, else after `ackDelayMs`.
   */
  consumed(seq: number): void {
    if (seq <= this.consumedSeq) return;
    this.consumedSeq = seq;
    if (this.consumedSeq - this.ackedSeq >= (this.opts.ackEveryBytes ?? 32 * 1024)) {
      this.flushAck();
    } else if (this.ackTimer === null) {
      this.ackTimer = this.timers.setTimeout(() => {
        this.ackTimer = null;
        this.flushAck();
      }, this.opts.ackDelayMs ?? 50);
    }
  }

  private flushAck(): void {
    if (this.ackTimer !== null) {
      this.timers.clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    if (this.consumedSeq > this.ackedSeq && this.send({ type: "ack", seq: this.consumedSeq })) {
      this.ackedSeq = this.consumedSeq;
    }
  }
}
