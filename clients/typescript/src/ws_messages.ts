/**
 * Types of every dashboard WebSocket frame, generated from schemas/ws_messages.schema.json
 * by `python -m docs_automation apiref` (json-schema-to-typescript). Do not edit.
 *
 * Send a `ClientFrame`; every message received is a `ServerFrame`. Switch on `type`:
 * frames with a `seq` are updates (`Update`, `CriticalAlert`).
 */
/**
 * Every frame of the dashboard protocol, in both directions. Each frame is one JSON object in one text message. The source of truth for the reference server, the protocol reference, the AsyncAPI document and the TypeScript types.
 */
export type AgentHiveDashboardWebSocketFrames = ClientFrame | ServerFrame;
/**
 * A frame a client sends to the server (Client → Server).
 */
export type ClientFrame = Ping | Subscribe | Unsubscribe | RequestData;
/**
 * Ties a reply to the client frame that caused it, or an update to its publisher. At most 128 characters.
 */
export type CorrelationId = string;
/**
 * A frame the server sends to a client (Server → Client).
 */
export type ServerFrame =
  | ConnectionEstablished
  | SubscriptionUpdated
  | Pong
  | DataResponse
  | DataError
  | Error
  | ResyncRequired
  | DisconnectNotice
  | CriticalAlert
  | Update;
/**
 * When the server made the frame: UTC, ISO 8601, ending in Z.
 */
export type Timestamp = string;
/**
 * A stream a client can subscribe to.
 */
export type SubscriptionName = "agents" | "coordination" | "tasks" | "system" | "alerts" | "project_index";
/**
 * Stable machine-readable name of an error; `message` keeps the original human-readable string.
 */
export type ErrorCode =
  | "invalid_json"
  | "invalid_text"
  | "not_an_object"
  | "binary_not_supported"
  | "invalid_field"
  | "unknown_message_type"
  | "invalid_subscription"
  | "too_many_subscriptions"
  | "rate_limited"
  | "message_too_large";
export type DisconnectReason =
  "rate_limited" | "backpressure" | "idle_timeout" | "unauthorized" | "forbidden_origin" | "server_shutdown";
/**
 * Per-subscription sequence number, the same on every instance; it grows by one per update. A gap means missed updates: resume from the last one seen. It jumps (to a new, higher range) only after a `resync_required`, when the broker lost its data.
 */
export type Seq = number;
/**
 * The update's kind: `agent_update`, `coordination_update`, `task_update`, `system_update`, `system_event`, `agent_event`, `project_index_event`, or whatever `message_type` a publisher names. Never one of the control frame types.
 */
export type UpdateType = string;

/**
 * Client → Server. Keeps the connection alive; the server answers with `pong`.
 */
export interface Ping {
  type: "ping";
  correlation_id?: CorrelationId;
}
/**
 * Client → Server. Adds subscriptions to the connection's set. Unknown names are reported in one `error` and the valid ones applied. `resume` maps a subscription to the last `seq` the client saw: the server replays what came after it, or sends `resync_required` when that is older than its history.
 */
export interface Subscribe {
  type: "subscribe";
  /**
   * @maxItems 64
   */
  subscriptions: string[];
  /**
   * Subscription → the last `seq` seen, or a `data_response`'s `positions` as is. Entries for subscriptions the connection does not hold after this subscribe are ignored (so the positions of `coordination_metrics`, which cover every subscription, can be passed whole); unknown names get one `error` `invalid_subscription`.
   */
  resume?: {
    [k: string]: number | undefined;
  };
  correlation_id?: CorrelationId;
}
/**
 * Client → Server. Removes subscriptions from the connection's set; unknown names are ignored.
 */
export interface Unsubscribe {
  type: "unsubscribe";
  /**
   * @maxItems 64
   */
  subscriptions: string[];
  correlation_id?: CorrelationId;
}
/**
 * Client → Server. Asks for a snapshot of server state; answered by `data_response` or `data_error`.
 */
export interface RequestData {
  type: "request_data";
  data_type: "agent_status" | "coordination_metrics" | "system_health";
  params?: {};
  correlation_id?: CorrelationId;
}
/**
 * Server → Client. Always the first frame on a connection.
 */
export interface ConnectionEstablished {
  type: "connection_established";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  /**
   * Chosen by the server, unique per connection.
   */
  connection_id: string;
  subscriptions: SubscriptionName[];
  server_time: Timestamp;
  contract_version: string;
}
/**
 * Server → Client. The connection's whole subscription set after a subscribe or unsubscribe, sorted and unique.
 */
export interface SubscriptionUpdated {
  type: "subscription_updated";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  subscriptions: SubscriptionName[];
}
/**
 * Server → Client. The answer to `ping`.
 */
export interface Pong {
  type: "pong";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
}
/**
 * Server → Client. A snapshot of server state answering `request_data`. `positions` (contract 1.2.0) says where in each stream the snapshot was taken: subscribe with `resume: positions` to receive exactly the updates after it, with nothing lost or repeated.
 */
export interface DataResponse {
  type: "data_response";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  data_type: string;
  data: {};
  positions?: Positions;
}
/**
 * Where a `data_response` was taken: subscription → the `seq` of the last update on it that `data` already reflects; before the first update, the seq just before it, so a resume from it replays the first. Pass it as `subscribe.resume` to receive exactly the updates after it. `agent_status` covers `agents`, `coordination_metrics` every subscription, `system_health` none. An instance whose broker announced a hole on a subscription (`resync_required`) rebuilt that subscription's state from the updates after the hole, so a position never claims an update the data lacks.
 */
export interface Positions {
  [k: string]: number | undefined;
}
/**
 * Server → Client. `request_data` could not be answered.
 */
export interface DataError {
  type: "data_error";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  data_type: string;
  error: string;
}
/**
 * Server → Client. A client frame was refused. The connection stays open.
 */
export interface Error {
  type: "error";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  message: string;
  code: ErrorCode;
}
/**
 * Server → Client. A resume asked for updates older than the server's history, so some cannot be replayed. Live updates continue from `latest_seq`; refetch state (for example with `request_data`) to fill the gap.
 */
export interface ResyncRequired {
  type: "resync_required";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  subscription: SubscriptionName;
  /**
   * The seq the client resumed from.
   */
  last_seq: number;
  /**
   * The oldest seq replayed: the oldest still in history, or a later one when the whole replay would pass the client's send-queue bounds; 0 when the history could not be read.
   */
  oldest_seq: number;
  /**
   * The newest seq published on this subscription; 0 when the history could not be read.
   */
  latest_seq: number;
}
/**
 * Server → Client. Sent just before every close the server starts.
 */
export interface DisconnectNotice {
  type: "disconnect_notice";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  reason: DisconnectReason;
}
/**
 * Server → Client. An update on the `alerts` subscription; `data.alerts` lists the alerts.
 */
export interface CriticalAlert {
  type: "critical_alert";
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  subscription: "alerts";
  data: {
    alerts: {}[];
  };
  seq: Seq;
}
/**
 * Server → Client. A published update, the same frame for every recipient. `seq` increases by one per update on its subscription.
 */
export interface Update {
  type: UpdateType;
  correlation_id: CorrelationId;
  timestamp: Timestamp;
  subscription: SubscriptionName;
  data: {};
  seq: Seq;
}
