"""The protocol state machine, tested without sockets: the clock is passed in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.app import new_uuid
from reference_server.broker.base import History, make_update
from reference_server.errors import DataRequestError
from reference_server.session import Close, Dropped, Send, Session, SubscriptionsChanged, replay
from reference_server.settings import Settings
from tests.hostile import client_frames, expected_refusal, hostile_strings
from tests.wsclient import check_server_frame

pytestmark = pytest.mark.unit

WALL = 1_795_000_000.0


def data_source(data_type: str, params: Any) -> tuple[dict[str, Any], dict[str, int]]:
    if data_type == "system_health":
        return {"status": "healthy"}, {}
    if data_type == "agent_status":
        return {"agents": []}, {"agents": 41}
    raise DataRequestError(f"Unknown data type: {data_type}")


def make(settings: Settings | None = None, subscriptions: str | None = None) -> Session:
    session = Session("conn-1", settings or Settings(), data_source, now=0.0, new_id=new_uuid)
    session.start(subscriptions, None, WALL)
    return session


def frames(actions: list[Any]) -> list[dict[str, Any]]:
    out = []
    for action in actions:
        if isinstance(action, Send):
            frame = json.loads(action.text)
            check_server_frame(frame)
            out.append(frame)
    return out


def test_start_sends_connection_established_first_with_default_subscriptions() -> None:
    session = Session("conn-1", Settings(), data_source, now=0.0, new_id=new_uuid)
    actions = session.start(None, None, WALL)
    first = frames(actions)[0]
    assert first["type"] == "connection_established"
    assert first["connection_id"] == "conn-1"
    assert first["subscriptions"] == ["agents", "coordination", "system", "tasks"]
    assert first["timestamp"].endswith("Z")
    assert isinstance(actions[-1], SubscriptionsChanged)


def test_start_with_unknown_query_names_applies_valid_ones_and_reports_the_rest() -> None:
    session = Session("c", Settings(), data_source, now=0.0, new_id=new_uuid)
    out = frames(session.start("alerts,zeta,beta", None, WALL))
    assert out[0]["subscriptions"] == ["alerts"]
    assert out[1]["message"] == "Invalid subscription(s): beta, zeta"
    assert out[1]["code"] == "invalid_subscription"


def test_start_with_empty_subscriptions_query_starts_with_none() -> None:
    assert make(subscriptions="").subscriptions == set()


def test_ping_is_answered_with_pong_echoing_the_correlation_id() -> None:
    out = frames(make().receive('{"type":"ping","correlation_id":"abc"}', 1.0, WALL))
    assert [f["type"] for f in out] == ["pong"]
    assert out[0]["correlation_id"] == "abc"


def test_reply_without_correlation_id_gets_a_fresh_uuid() -> None:
    out = frames(make().receive('{"type":"ping"}', 1.0, WALL))
    assert len(out[0]["correlation_id"]) == 36


def test_subscribe_reports_unknown_names_once_before_the_sorted_set() -> None:
    session = make(subscriptions="")
    msg = {"type": "subscribe", "subscriptions": ["tasks", "nope", "agents", "agents", "bad"]}
    actions = session.receive(json.dumps(msg), 1.0, WALL)
    out = frames(actions)
    assert [f["type"] for f in out] == ["error", "subscription_updated"]
    assert out[0]["message"] == "Invalid subscription(s): bad, nope"
    assert out[1]["subscriptions"] == ["agents", "tasks"]
    change = actions[-1]
    assert isinstance(change, SubscriptionsChanged)
    assert change.added == {"agents", "tasks"}


def test_unsubscribe_ignores_unknown_names() -> None:
    session = make()
    msg = {"type": "unsubscribe", "subscriptions": ["agents", "ghost"]}
    out = frames(session.receive(json.dumps(msg), 1.0, WALL))
    assert [f["type"] for f in out] == ["subscription_updated"]
    assert out[0]["subscriptions"] == ["coordination", "system", "tasks"]


def test_subscriptions_that_are_not_a_list_are_refused_not_split_into_letters() -> None:
    session = make(subscriptions="")
    for bad in (42, "agents", [1, 2], None):
        msg = {"type": "subscribe", "subscriptions": bad}
        out = frames(session.receive(json.dumps(msg), 1.0, WALL))
        assert [f["code"] for f in out] == ["invalid_field"]
    assert session.subscriptions == set()


def test_too_many_subscriptions_are_refused_whole() -> None:
    session = make(Settings(max_subscriptions_per_connection=2), subscriptions="agents")
    msg = {"type": "subscribe", "subscriptions": ["tasks", "system"]}
    out = frames(session.receive(json.dumps(msg), 1.0, WALL))
    assert [f["code"] for f in out] == ["too_many_subscriptions"]
    assert session.subscriptions == {"agents"}


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("not json", "invalid_json", "Invalid JSON message format"),
        ("[1, 2]", "not_an_object", "Invalid JSON message format"),
        ('"text"', "not_an_object", "Invalid JSON message format"),
        ("[" * 5000 + "]" * 5000, "invalid_json", "Invalid JSON message format"),
        ('{"type":"ping","n":' + "9" * 5000 + "}", "invalid_json", "Invalid JSON message format"),
        ('{"type":"dance"}', "unknown_message_type", "Unknown message type: dance"),
        ('{"type":7}', "invalid_field", "Invalid message: type must be a string"),
    ],
)
def test_bad_frames_get_an_error_and_the_session_stays_usable(
    raw: str, code: str, message: str
) -> None:
    session = make()
    out = frames(session.receive(raw, 1.0, WALL))
    assert [(f["code"], f["message"]) for f in out] == [(code, message)]
    assert frames(session.receive('{"type":"ping"}', 1.1, WALL))[0]["type"] == "pong"


def test_binary_frames_get_an_error() -> None:
    out = frames(make().receive(b"\x00\x01", 1.0, WALL))
    assert out[0]["code"] == "binary_not_supported"


def test_size_is_checked_on_the_raw_frame_before_parsing() -> None:
    session = make()
    pad = 65_536 - len('{"type":"ping","p":""}')
    exact = '{"type":"ping","p":"' + "x" * pad + '"}'
    assert len(exact) == 65_536
    assert frames(session.receive(exact, 1.0, WALL))[0]["type"] == "pong"
    over = exact[:-2] + 'x"}'
    assert frames(session.receive(over, 1.1, WALL))[0]["message"] == "Message too large"
    # Multi-byte characters count as bytes, not characters.
    wide = '{"type":"ping","p":"' + "é" * (pad // 2 + 1) + '"}'
    assert frames(session.receive(wide, 1.2, WALL))[0]["code"] == "message_too_large"


def test_request_data_answers_from_the_data_source_or_with_data_error() -> None:
    session = make()
    ok = frames(session.receive('{"type":"request_data","data_type":"system_health"}', 1, WALL))
    assert ok[0]["type"] == "data_response"
    assert ok[0]["data"] == {"status": "healthy"}
    assert ok[0]["positions"] == {}
    agents = frames(session.receive('{"type":"request_data","data_type":"agent_status"}', 1, WALL))
    assert (agents[0]["data"], agents[0]["positions"]) == ({"agents": []}, {"agents": 41})
    bad = frames(session.receive('{"type":"request_data","data_type":"weather"}', 2, WALL))
    assert bad[0]["type"] == "data_error"
    assert bad[0]["error"] == "Unknown data type: weather"


def test_burst_then_drop_with_one_notice_per_cooldown() -> None:
    settings = Settings(rate_tokens_per_sec=1, rate_burst=3, rate_notify_cooldown_seconds=5)
    session = make(settings)
    kinds = []
    for i in range(6):
        actions = session.receive('{"type":"ping"}', 0.001 * i, WALL)
        kinds.append([type(a).__name__ for a in actions])
    assert kinds[:3] == [["Send"]] * 3
    assert kinds[3] == ["Dropped", "Send"]  # the one notice
    assert kinds[4:] == [["Dropped"], ["Dropped"]]


def test_invalid_frames_cost_tokens_too() -> None:
    session = make(Settings(rate_tokens_per_sec=1, rate_burst=2))
    session.receive("garbage", 0.0, WALL)
    session.receive(b"\x00", 0.0, WALL)
    assert isinstance(session.receive('{"type":"ping"}', 0.0, WALL)[0], Dropped)


def test_sustained_flood_closes_with_1008() -> None:
    settings = Settings(rate_tokens_per_sec=1, rate_burst=1, flood_drop_threshold=10)
    session = make(settings)
    closes = []
    for i in range(20):
        closes += [a for a in session.receive("{}", i * 0.01, WALL) if isinstance(a, Close)]
    assert [(c.code, c.reason) for c in closes] == [(1008, "rate_limited")]
    notice = json.loads(closes[0].notice)
    check_server_frame(notice)
    assert notice == {**notice, "type": "disconnect_notice", "reason": "rate_limited"}
    assert session.receive('{"type":"ping"}', 100.0, WALL) == []


def test_idle_session_is_closed_with_1000_and_valid_frames_keep_it_alive() -> None:
    session = make(Settings(idle_disconnect_seconds=10))
    assert session.tick(9.0, WALL) == []
    session.receive('{"type":"ping"}', 9.0, WALL)
    session.receive("not json", 15.0, WALL)  # invalid frames do not count as activity
    assert session.tick(18.0, WALL) == []
    closes = session.tick(19.0, WALL)
    assert [(c.code, c.reason) for c in closes if isinstance(c, Close)] == [(1000, "idle_timeout")]


def _updates(n: int, start: int = 1) -> list[Any]:
    return [
        make_update("agents", "agent_update", {"i": s}, seq=s, correlation_id="p", wall=WALL)
        for s in range(start, start + n)
    ]


def test_replay_sends_missed_updates_then_buffered_live_ones_without_duplicates() -> None:
    kept = _updates(10)
    history = History([u for u in kept if u.seq > 4], oldest_seq=1, latest_seq=10)
    buffered = _updates(4, start=9)  # 9 and 10 overlap the history, 11 and 12 are new
    resync, out = replay(4, history, buffered)
    assert not resync
    assert [u.seq for u in out] == [5, 6, 7, 8, 9, 10, 11, 12]


def test_replay_older_than_history_asks_for_resync_and_sends_what_is_left() -> None:
    history = History(_updates(3, start=8), oldest_seq=8, latest_seq=10)
    resync, out = replay(2, history, _updates(1, start=11))
    assert resync
    assert [u.seq for u in out] == [8, 9, 10, 11]


def test_replay_from_a_seq_the_server_never_reached_asks_for_resync() -> None:
    # e.g. the broker lost its data in a restart: the client's seq 50 is from before.
    history = History([], oldest_seq=4, latest_seq=3)
    resync, out = replay(50, history, _updates(1, start=4))
    assert resync
    assert [u.seq for u in out] == [4]


def test_finish_resume_frames_validate_against_the_schema() -> None:
    session = make()
    history = History(_updates(2, start=5), oldest_seq=5, latest_seq=6)
    out = frames(session.finish_resume("agents", 1, history, [], WALL))
    assert [f["type"] for f in out] == ["resync_required", "agent_update", "agent_update"]
    assert out[0]["oldest_seq"] == 5


def test_a_replay_larger_than_the_outbox_room_sends_resync_and_the_newest_that_fit() -> None:
    session = make()
    updates = _updates(20, start=1)
    size = len(updates[-1].text)  # seqs 10 to 20: every frame as long (ASCII, two digits)
    assert all(len(u.text) == size for u in updates[9:])
    history = History(updates, oldest_seq=1, latest_seq=20)
    room = (512 + 5 * size, 100)  # the resync frame's reserve plus five frames
    out = frames(session.finish_resume("agents", 0, history, [], WALL, room=room))
    assert out[0]["type"] == "resync_required"
    assert (out[0]["oldest_seq"], out[0]["latest_seq"]) == (16, 20)
    assert [f["seq"] for f in out[1:]] == [16, 17, 18, 19, 20]
    total = sum(len(json.dumps(f)) for f in out)  # never more than the room given
    assert total <= room[0]


def test_a_replay_over_the_frame_room_is_trimmed_the_same_way() -> None:
    session = make()
    history = History(_updates(9, start=1), oldest_seq=1, latest_seq=9)
    out = frames(session.finish_resume("agents", 0, history, [], WALL, room=(1 << 20, 4)))
    assert [f["type"] for f in out] == ["resync_required"] + ["agent_update"] * 3
    assert [f["seq"] for f in out[1:]] == [7, 8, 9]


def test_a_replay_within_the_room_is_sent_whole_without_resync() -> None:
    session = make()
    history = History(_updates(3, start=1), oldest_seq=1, latest_seq=3)
    out = frames(session.finish_resume("agents", 0, history, [], WALL, room=(1 << 20, 3)))
    assert [f["seq"] for f in out] == [1, 2, 3]


def test_subscribe_with_resume_asks_the_app_to_replay() -> None:
    session = make(subscriptions="")
    msg = {"type": "subscribe", "subscriptions": ["agents"], "resume": {"agents": 7, "tasks": 1}}
    change = session.receive(json.dumps(msg), 1.0, WALL)[-1]
    assert isinstance(change, SubscriptionsChanged)
    assert change.resume == {"agents": 7}  # only subscriptions the connection holds


def test_resume_query_with_bad_pairs_gets_an_error_after_connection_established() -> None:
    session = Session("c", Settings(), data_source, now=0.0, new_id=new_uuid)
    actions = session.start("agents", "agents:5,tasks:x", WALL)
    out = frames(actions)
    assert [f["type"] for f in out] == ["connection_established", "error"]
    assert out[1]["code"] == "invalid_field"
    assert isinstance(actions[-1], SubscriptionsChanged)
    assert actions[-1].resume == {"agents": 5}


def test_resume_values_past_json_safe_integers_are_refused() -> None:
    session = make(subscriptions="")
    msg = {"type": "subscribe", "subscriptions": ["agents"], "resume": {"agents": 2**60}}
    out = frames(session.receive(json.dumps(msg), 1.0, WALL))
    assert [f["code"] for f in out] == ["invalid_field"]


def test_replay_when_history_could_not_be_read_asks_for_resync() -> None:
    resync, out = replay(5, History([], oldest_seq=0, latest_seq=0), _updates(2, start=9))
    assert resync
    assert [u.seq for u in out] == [9, 10]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "subscribe", "unsubscribe", "request_data", "x"])},
    optional={
        "subscriptions": json_values,
        "resume": json_values,
        "data_type": json_values,
        "params": json_values,
        "correlation_id": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(frame_like.map(json.dumps), st.text(max_size=200), st.binary(max_size=50)))
def test_nothing_a_client_sends_raises_past_the_session(raw: str | bytes) -> None:
    session = make(Settings(rate_burst=10_000))
    for action in session.receive(raw, 1.0, WALL):
        assert isinstance(action, Send | SubscriptionsChanged)
    frames(session.receive(raw, 1.0, WALL))  # every reply validates against the schema


def _sent(actions: list[Any]) -> list[dict[str, Any]]:
    """The frames of `actions`, each checked to be what a peer can read: UTF-8, real JSON."""
    for action in actions:
        if isinstance(action, Send):
            json.loads(action.text.encode("utf-8"), parse_constant=_no_constant)
    return frames(actions)


def _no_constant(name: str) -> Any:
    raise AssertionError(f"a frame holds {name}, which is not JSON")


# The string goes in raw, unescaped: surrogates as such, quotes and backslashes breaking the JSON.
raw_text_frames = hostile_strings.map(lambda s: '{"type":"ping","correlation_id":"' + s + '"}')


@settings(max_examples=400, deadline=None)
@given(st.one_of(client_frames(), raw_text_frames))
def test_a_hostile_frame_gets_the_right_error_or_a_valid_answer_and_the_session_lives(
    raw: str,
) -> None:
    session = make(Settings(rate_burst=10_000, rate_tokens_per_sec=10_000))
    actions = session.receive(raw, 1.0, WALL)
    sent = _sent(actions)
    refusal = expected_refusal(raw)
    if refusal:
        assert [(f["type"], f["code"] in refusal) for f in sent] == [("error", True)], raw
        assert not any(isinstance(a, SubscriptionsChanged) for a in actions)
    else:
        assert not {f.get("code") for f in sent} & {"invalid_text", "invalid_json"}, raw
    after = _sent(session.receive('{"type":"ping","correlation_id":"after"}', 2.0, WALL))
    assert [(f["type"], f["correlation_id"]) for f in after] == [("pong", "after")]


@settings(max_examples=100, deadline=None)
@given(hostile_strings, hostile_strings)
def test_hostile_query_text_never_breaks_the_first_frames(subscriptions: str, resume: str) -> None:
    session = Session("c", Settings(), data_source, now=0.0, new_id=new_uuid)
    sent = _sent(session.start(subscriptions, resume, WALL))
    assert sent[0]["type"] == "connection_established"
    assert all(f["type"] == "error" for f in sent[1:])


def test_apply_gives_the_bucket_its_new_rate_and_burst_from_now() -> None:
    session = make(Settings(rate_tokens_per_sec=1, rate_burst=40))
    assert session.tokens_left(0.0) == 40
    session.apply(Settings(rate_tokens_per_sec=1, rate_burst=2), now=1.0)
    assert session.tokens_left(1.0) == 2
    ping = json.dumps({"type": "ping"})
    kinds = [frames(session.receive(ping, 1.0, WALL)) for _ in range(3)]
    assert [k[0]["type"] for k in kinds] == ["pong", "pong", "error"]
    assert session.tokens_left(1.0) == 0


def test_apply_with_a_shorter_idle_timeout_closes_at_the_next_tick() -> None:
    session = make(Settings(idle_disconnect_seconds=600))
    assert session.tick(100.0, WALL) == []
    assert session.idle_seconds(100.0) == 100.0
    session.apply(Settings(idle_disconnect_seconds=50), now=100.0)
    closes = session.tick(100.0, WALL)
    assert [(c.reason, c.code) for c in closes if isinstance(c, Close)] == [("idle_timeout", 1000)]


def test_apply_with_a_longer_idle_timeout_keeps_a_quiet_client() -> None:
    session = make(Settings(idle_disconnect_seconds=60))
    session.apply(Settings(idle_disconnect_seconds=600), now=30.0)
    assert session.tick(120.0, WALL) == []


@pytest.mark.parametrize(
    "resume",
    [
        {"agents": -1},  # negative
        {"agents": 1.5},  # not an integer
        {"agents": "41"},  # a string of digits
        {"agents": True},  # a JSON boolean, which Python would take for 1
        {"agents": None},
        {"agents": 2**53},  # past what a JavaScript number holds exactly
        {"agents": 10**400},  # a huge integer
        {f"s{i}": 1 for i in range(65)},  # more entries than there are subscriptions, many times
        {"x" * 65: 1},  # a name longer than any subscription name
        [41],
        "agents:41",
    ],
)
def test_a_resume_map_of_the_wrong_shape_is_refused_whole_with_nothing_applied(
    resume: object,
) -> None:
    session = make(subscriptions="")
    frame = json.dumps({"type": "subscribe", "subscriptions": ["agents"], "resume": resume})
    actions = session.receive(frame, 1.0, WALL)
    out = frames(actions)
    assert [(f["type"], f["code"]) for f in out] == [("error", "invalid_field")]
    assert not [a for a in actions if isinstance(a, SubscriptionsChanged)]
    assert session.subscriptions == set()


def test_a_resume_naming_unknown_subscriptions_says_so_and_resumes_the_rest() -> None:
    session = make(subscriptions="")
    frame = {
        "type": "subscribe",
        "subscriptions": ["agents"],
        "resume": {"agents": 41, "weather": 3, "tasks": 7},
        "correlation_id": "r-1",
    }
    actions = session.receive(json.dumps(frame), 1.0, WALL)
    out = frames(actions)
    assert [f["type"] for f in out] == ["error", "subscription_updated"]
    assert out[0]["message"] == "Invalid subscription(s) in resume: weather"
    assert (out[0]["code"], out[0]["correlation_id"]) == ("invalid_subscription", "r-1")
    # `tasks` is a subscription, just not held: ignored, as the positions of
    # coordination_metrics (every subscription) are meant to be passed whole.
    (change,) = [a for a in actions if isinstance(a, SubscriptionsChanged)]
    assert dict(change.resume) == {"agents": 41}


def test_a_resume_from_the_largest_position_is_taken_and_left_to_the_history() -> None:
    session = make(subscriptions="")
    frame = {"type": "subscribe", "subscriptions": ["agents"], "resume": {"agents": 2**53 - 1}}
    (change,) = [
        a
        for a in session.receive(json.dumps(frame), 1.0, WALL)
        if isinstance(a, SubscriptionsChanged)
    ]
    assert dict(change.resume) == {"agents": 2**53 - 1}
    resync, replayed = replay(2**53 - 1, History([], oldest_seq=6, latest_seq=5), [])
    assert resync and replayed == []  # ahead of every update known: resync_required
