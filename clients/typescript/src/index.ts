/**
 * The Agent Hive dashboard client for browsers and PWAs (and Node with the `ws` package).
 *
 * `HiveClient` keeps one dashboard WebSocket up; every frame type comes from the generated
 * `ws_messages` types, the same ones the protocol reference documents.
 *
 * @packageDocumentation
 */
export { HiveClient } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  CloseInfo,
  ControlType,
  DataType,
  Environment,
  Events,
  FrameEvents,
  Handler,
  Snapshot,
  SocketConstructor,
  SocketLike,
  UpdateFrame,
} from "./client.js";
export { backoffDelay } from "./backoff.js";
export { TokenBucket } from "./bucket.js";
export type * from "./ws_messages.js";
