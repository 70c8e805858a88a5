// A PWA's dashboard connection, typed with the generated `ws_messages.d.ts`.
// It subscribes to alerts, pings, asks for system health, remembers the last `seq` of every
// subscription (what a reconnect would pass as `resume`), then closes.
import type { ClientFrame, ServerFrame, Update, CriticalAlert } from "./ws_messages";

const url = "ws://127.0.0.1:8000/api/dashboard/ws/dashboard?subscriptions=agents,alerts";
const lastSeq: Record<string, number> = {};
const waitingFor = new Set(["pong", "subscription_updated", "data_response"]);

function send(socket: WebSocket, frame: ClientFrame): void {
  socket.send(JSON.stringify(frame));
}

// Updates are the frames that carry a `seq`; every other frame is a control frame, and
// `switch (frame.type)` narrows those to one interface each.
function isUpdate(frame: ServerFrame): frame is Update | CriticalAlert {
  return "seq" in frame;
}

function handle(socket: WebSocket, frame: ServerFrame): void {
  if (isUpdate(frame)) {
    lastSeq[frame.subscription] = frame.seq;
    return;
  }
  switch (frame.type) {
    case "connection_established":
      console.log(`connected as ${frame.connection_id}, contract ${frame.contract_version}`);
      send(socket, { type: "subscribe", subscriptions: ["alerts"], correlation_id: "sub-1" });
      send(socket, { type: "ping", correlation_id: "ping-1" });
      send(socket, { type: "request_data", data_type: "system_health", params: {} });
      break;
    case "subscription_updated":
      console.log(`subscribed to ${frame.subscriptions.join(", ")}`);
      break;
    case "pong":
      console.log(`pong for ${frame.correlation_id}`);
      break;
    case "data_response":
      console.log(`${frame.data_type}: ${JSON.stringify(frame.data)}`);
      break;
    case "error":
      console.error(`error ${frame.code}: ${frame.message}`);
      return;
    case "disconnect_notice":
      console.error(`server is closing: ${frame.reason}`);
      return;
    default:
      return;
  }
  waitingFor.delete(frame.type);
  if (waitingFor.size === 0) {
    console.log(`resume point: ${JSON.stringify(lastSeq)}`);
    socket.close(1000);
  }
}

const socket = new WebSocket(url);
const deadline = setTimeout(() => {
  socket.close();
  throw new Error(`no answer within 10 s for: ${[...waitingFor].join(", ")}`);
}, 10_000);
socket.addEventListener("message", (event) => {
  handle(socket, JSON.parse(String(event.data)) as ServerFrame);
});
socket.addEventListener("close", () => clearTimeout(deadline));
