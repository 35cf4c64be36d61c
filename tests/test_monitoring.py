"""Monitoring: /metrics in Prometheus text, the admins-only /monitor namespace, pushed series."""
import math
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from socketio import packet

from chat.metrics import Latencies, Metrics, quantile
from chat.monitor import MAX_SERIES

TOKEN = "notify-token-for-the-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings():
    return {"NOTIFY_TOKEN": TOKEN, "ADMIN_USERS": "Boss, root"}


@pytest.fixture
def monitor(app, papo, user):
    """Open /monitor test clients: monitor(name) for a registered user, monitor(None) without identity.

    monitor.refusals collects the data of every connect_error the /monitor namespace sent.
    """
    clients = []
    refusals = []
    tokens = {}
    server = papo.socketio.server

    def make(name):
        if name and name not in tokens:
            tokens[name] = user(name)[1]
        auth = {"token": tokens[name]} if name else None
        socket = papo.socketio.test_client(app, auth=auth)  # its constructor installs the packet hook we wrap
        clients.append(socket)
        send = server._send_packet

        def recording(eio_sid, pkt):
            if pkt.packet_type == packet.CONNECT_ERROR and pkt.namespace == "/monitor":
                refusals.append(pkt.data)
            return send(eio_sid, pkt)

        server._send_packet = recording
        try:
            socket.connect(namespace="/monitor", auth=auth)
        finally:
            server._send_packet = send
        return socket

    make.refusals = refusals  # type: ignore[attr-defined]
    yield make
    for socket in clients:
        for namespace in ("/monitor", "/"):
            if socket.is_connected(namespace):
                socket.disconnect(namespace=namespace)


def heard(socket, name):
    """The payloads of the /monitor events called `name` received since the last call."""
    return [e["args"][0] for e in socket.get_received("/monitor") if e["name"] == name]


def scrape(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(answer.get_data(as_text=True))}


def value(families, family_name, sample=None, **labels):
    family = families[family_name]
    wanted = sample or family_name
    found = [s.value for s in family.samples
             if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, (wanted, labels, family.samples)
    return sum(found)


def test_metrics_parse_and_carry_what_the_issue_lists(client):
    families = scrape(client)
    for name, kind in [("papo_connections", "gauge"), ("papo_chat_connections", "gauge"), ("papo_rooms", "gauge"),
                       ("papo_room_members", "gauge"), ("papo_messages_received", "counter"),
                       ("papo_messages_delivered", "counter"), ("papo_delivery_latency_seconds", "histogram"),
                       ("papo_errors", "counter"), ("papo_events_received", "counter"),
                       ("papo_events_emitted", "counter"), ("process_cpu_seconds", "counter"),
                       ("process_resident_memory_bytes", "gauge"), ("python_info", "gauge")]:
        assert families[name].type == kind, name
    assert {s.labels["transport"] for s in families["papo_connections"].samples} == {"websocket", "polling"}


def test_counters_move_after_traffic(client, user, connect):
    before = scrape(client)
    sockets = [connect(user(name)[1]) for name in ("ana", "bo")]
    for socket in sockets:
        assert socket.emit("join", {"room": "lobby"}, callback=True)["ok"]
    for i in range(3):
        assert sockets[0].emit("message", {"room": "lobby", "text": f"m{i}", "client_id": f"c{i}"}, callback=True)["ok"]
    refused = sockets[1].emit("message", {"room": "elsewhere", "text": "x", "client_id": "z"}, callback=True)
    assert refused["error"]["code"] == "not_in_room"
    sockets[1].emit("no-such-event", {}, callback=True)
    assert client.post("/api/notify", json={"title": "x"}).status_code == 401
    after = scrape(client)

    def moved(name, sample=None, **labels):
        return value(after, name, sample, **labels) - value(before, name, sample, **labels)

    assert moved("papo_messages_received", "papo_messages_received_total") == 3
    assert moved("papo_messages_delivered", "papo_messages_delivered_total") == 6
    assert moved("papo_delivery_latency_seconds", "papo_delivery_latency_seconds_count") == 3
    assert moved("papo_events_received", "papo_events_received_total", event="message") == 4
    assert moved("papo_events_received", "papo_events_received_total", event="join") == 2
    assert moved("papo_events_received", "papo_events_received_total", event="unknown") == 1
    assert moved("papo_events_emitted", "papo_events_emitted_total", event="message") == 3
    assert moved("papo_errors", "papo_errors_total", code="not_in_room", transport="socket") == 1
    assert moved("papo_errors", "papo_errors_total", code="invalid_payload", transport="socket") == 1
    assert moved("papo_errors", "papo_errors_total", code="unauthorized", transport="http") == 1
    assert value(after, "papo_chat_connections") == 2
    assert value(after, "papo_rooms") == 1 and value(after, "papo_room_members") == 2


def test_an_unknown_event_name_does_not_make_a_new_label(client, user, connect):
    socket = connect(user("ana")[1])
    for i in range(5):
        socket.emit(f"made-up-{i}", {}, callback=True)
    events_in = scrape(client)["papo_events_received"]
    assert not any(s.labels.get("event", "").startswith("made-up") for s in events_in.samples)


def test_a_refused_connection_is_counted(app, papo, client):
    assert not papo.socketio.test_client(app).is_connected()
    assert value(scrape(client), "papo_errors", "papo_errors_total", code="unauthorized", transport="socket") == 1


def test_monitor_refuses_without_identity_and_non_admins(papo, user, monitor):
    anonymous = monitor(None)
    plain = monitor("ana")
    assert not anonymous.is_connected("/monitor") and not plain.is_connected("/monitor")
    assert monitor.refusals == [{"message": "unauthorized", "data": {"code": "unauthorized"}},
                                {"message": "forbidden", "data": {"code": "forbidden"}}]
    assert papo.monitor.watchers == set()
    assert not papo.monitor._running  # nothing started for them


def test_the_publisher_starts_with_the_first_admin_not_before(app, papo, monitor):
    assert not papo.monitor._running
    boss = monitor("boss")  # ADMIN_USERS matches case-insensitively
    assert boss.is_connected("/monitor")
    assert papo.monitor._running
    [backlog] = heard(boss, "backlog")
    assert backlog == {"samples": [], "series": {}}


def test_an_admin_gets_a_sample_about_once_a_second_and_the_backlog_on_reconnect(papo, user, connect, monitor):
    boss = monitor("root")
    boss.get_received("/monitor")
    talker = connect(user("ana")[1])
    assert talker.emit("join", {"room": "busy"}, callback=True)["ok"]
    started = time.monotonic()
    samples: list[dict] = []
    while len(samples) < 2 and time.monotonic() - started < 10:
        talker.emit("message", {"room": "busy", "text": "tick", "client_id": f"t{time.monotonic()}"}, callback=True)
        time.sleep(0.2)
        samples += heard(boss, "metrics")
    assert len(samples) >= 2 and time.monotonic() - started < 4
    sample = samples[-1]
    for key in ("ts", "connections", "rooms", "messages_per_s", "latency_ms", "busiest_rooms", "cpu_percent",
                "memory_rss_bytes", "transports"):
        assert key in sample
    assert sample["connections"] == 2 and sample["rooms"] == 1  # ana, and root's client in `/` too
    assert sample["messages_per_s"] > 0
    assert sample["latency_ms"]["p50"] is not None and sample["latency_ms"]["p99"] >= sample["latency_ms"]["p50"]
    assert sample["busiest_rooms"][0]["room"] == "busy" and sample["busiest_rooms"][0]["members"] == 1
    assert sample["memory_rss_bytes"] > 0
    assert 0.5 < (samples[-1]["ts"] - samples[-2]["ts"]) / 1000 < 1.8
    boss.disconnect(namespace="/monitor")
    again = monitor("root")
    [backlog] = heard(again, "backlog")
    kept = [s["ts"] for s in backlog["samples"]]
    assert kept[-len(samples):] == [s["ts"] for s in samples][-len(kept):]


def test_a_pushed_value_reaches_the_dashboards_and_the_metrics(client, papo, monitor):
    boss = monitor("boss")
    boss.get_received("/monitor")
    answer = client.post("/api/metrics/queue_depth", json={"value": 12}, headers=AUTH)
    assert answer.status_code == 202
    assert answer.json["name"] == "queue_depth" and answer.json["value"] == 12
    [point] = heard(boss, "series")
    assert point == answer.json
    client.post("/api/metrics/queue_depth", json={"value": 7.5}, headers=AUTH)
    assert value(scrape(client), "papo_series_value", name="queue_depth") == 7.5
    later = monitor("boss")
    [backlog] = heard(later, "backlog")
    assert [v for _, v in backlog["series"]["queue_depth"]] == [12, 7.5]


@pytest.mark.parametrize("name", ["Queue", "1st", "a-b", "a" * 65, "a.b"])
def test_bad_series_names_are_invalid(client, name):
    answer = client.post(f"/api/metrics/{name}", json={"value": 1}, headers=AUTH)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_payload"


@pytest.mark.parametrize("body", ['{"value": "12"}', '{"value": true}', '{"value": null}', '{}', '{"value": NaN}',
                                  '{"value": Infinity}', '{"value": 1e400}', '[1]', '{"value": [1]}'])
def test_bad_series_values_are_invalid(client, body):
    answer = client.post("/api/metrics/ok", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_payload"


def test_pushing_needs_the_notify_token(client, user):
    _, user_token = user("ana")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {user_token}"}):
        answer = client.post("/api/metrics/x", json={"value": 1}, headers=headers)
        assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"


def test_series_are_capped_by_forgetting_the_least_recently_pushed(client, papo):
    for i in range(MAX_SERIES + 3):
        client.post(f"/api/metrics/s{i}", json={"value": i}, headers=AUTH)
    client.post("/api/metrics/s0", json={"value": 0}, headers=AUTH)  # already forgotten: back as the newest
    kept = papo.monitor.latest()
    assert len(kept) == MAX_SERIES and "s0" in kept and "s1" not in kept and f"s{MAX_SERIES + 2}" in kept


def test_quantile_interpolates_within_buckets():
    buckets = [(0.001, 0), (0.002, 50), (0.005, 99), (0.01, 100), (math.inf, 100)]
    assert quantile(0.5, buckets) == pytest.approx(0.002)
    assert quantile(0.25, buckets) == pytest.approx(0.0015)
    p99 = quantile(0.99, buckets)
    assert p99 is not None and 0.002 < p99 <= 0.005
    assert quantile(0.5, [(0.001, 0), (math.inf, 0)]) is None
    assert quantile(0.99, [(0.001, 1), (math.inf, 10)]) == 0.001  # beyond the last bound: the last bound


def test_an_observation_counts_in_the_first_bucket_whose_bound_holds_it():
    latencies = Latencies("t_seconds", "t", (0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.0011, 0.01, 3.0):
        latencies.observe(seconds)
    assert latencies.cumulative() == [(0.001, 2.0), (0.01, 4.0), (math.inf, 5.0)]
    samples = {(s.name, s.labels.get("le")): s.value for s in latencies.family().samples}
    assert samples[("t_seconds_bucket", "0.001")] == 2 and samples[("t_seconds_bucket", "+Inf")] == 5
    assert samples[("t_seconds_count", None)] == 5 and samples[("t_seconds_sum", None)] == pytest.approx(3.0126)


def test_totals_read_the_counters_and_the_histogram():
    metrics = Metrics()
    metrics.messages_in.inc()
    metrics.messages_out.inc(3)
    metrics.errors.labels("not_in_room", "socket").inc()
    metrics.errors.labels("not_found", "http").inc(2)
    metrics.latency.observe(0.004)
    totals = metrics.totals()
    assert (totals["messages_in"], totals["messages_out"], totals["errors"]) == (1, 3, 3)
    assert dict(totals["buckets"])[0.005] == 1 and dict(totals["buckets"])[0.003] == 0


def test_the_monitor_page_is_for_admins_and_carries_no_inline_script(client):
    assert client.get("/monitor").status_code == 302  # to the login page
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie("ana"))
    assert client.get("/monitor").status_code == 403
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie("BOSS"))
    page = client.get("/monitor")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "vendor/uPlot.iife.min.js" in html and "js/monitor.js" in html
    assert "<script>" not in html and " style=" not in html
