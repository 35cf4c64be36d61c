"""The transport study's pure parts: the load generator's SSE parser, scale limits and the report's verdicts."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import figures  # noqa: E402
import report  # noqa: E402

NODE = shutil.which("node")


def parse_sse(*chunks):
    """Feed the chunks to bench/loadgen/lib/sse.js's parser; (events, last id, retry, comments)."""
    script = (
        "const { SseParser } = require(process.argv[1]);"
        "const events = []; const p = new SseParser((e) => events.push(e));"
        "for (const c of JSON.parse(process.argv[2])) p.feed(c);"
        "console.log(JSON.stringify({ events, lastId: p.lastId, retry: p.retry, comments: p.comments }));"
    )
    assert NODE, "node is needed: the load generator is Node"
    out = subprocess.run([NODE, "-e", script, str(ROOT / "bench/loadgen/lib/sse.js"), json.dumps(list(chunks))],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    got = json.loads(out)
    return got["events"], got["lastId"], got["retry"], got["comments"]


def test_sse_events_are_dispatched_on_the_empty_line_with_their_type_data_and_id():
    events, last, _, _ = parse_sse('id: r:1\nevent: message\ndata: {"text":"a"}\n\n', 'data: plain\n\n')
    assert events == [{"type": "message", "data": '{"text":"a"}', "id": "r:1"},
                      {"type": "message", "data": "plain", "id": "r:1"}]  # the id is kept until a new one
    assert last == "r:1"


def test_sse_lines_split_anywhere_across_chunks_and_crlf_split_between_two():
    events, last, _, _ = parse_sse("id: 7\r", "\nda", "ta: x\r\n", "\r", "\n")
    assert events == [{"type": "message", "data": "x", "id": "7"}]
    assert last == "7"
    events, _, _, _ = parse_sse("data: a\r", "\ndata: b\n\n")  # the LF completes the CR: no empty line
    assert [e["data"] for e in events] == ["a\nb"]


def test_sse_bare_cr_ends_lines_and_multi_line_data_joins_with_newlines():
    events, _, _, _ = parse_sse("data: one\rdata: two\rdata:three\r\r")
    assert [e["data"] for e in events] == ["one\ntwo\nthree"]


def test_sse_comments_retry_and_an_event_without_data_dispatch_nothing():
    events, last, retry, comments = parse_sse(": keep-alive\n\n", "retry: 2000\n\n", "retry: soon\n\n",
                                              "event: ping\nid: 9\n\n")
    assert events == []
    assert (last, retry, comments) == ("9", 2000, 1)


def test_sse_one_bom_at_the_start_and_a_field_without_a_colon():
    events, _, _, _ = parse_sse("\ufeffdata\n\n", "data:  two spaces\n\n", "\ufeffdata: later\n\n")
    assert [e["data"] for e in events] == ["", " two spaces"]  # a BOM later is part of the field name


def test_descriptors_count_a_second_socket_for_senders_of_the_http_ways():
    assert figures.descriptors("ws", 10000, 1000) == 10200
    assert figures.descriptors("sse", 10000, 1000) == 11200
    assert figures.descriptors("long-poll", 100, 0) == 400  # 0 senders given: every client sends
    assert figures.descriptors("sio-polling", 10000, 1000) == 20200


def transport_run(way, clients, *, p99=10.0, delivered=1.0, sent=None, cpu_us=50.0, mem=None, error=None,
                  fresh=False, down=250.0, up=15.0, connect_us=1000.0):
    target = min(clients, 1000) * 0.5
    result = {"latency_ms": {"count": 100, "p50": p99 / 3, "p99": p99}, "delivered_ratio": delivered,
              "send_target_per_s": target, "sent_per_s": target if sent is None else sent,
              "kept_up_rule": "sent>=97% of target, delivered>=99%, p99<=1000ms", "params": {"duration": 3},
              "server_cpu_us_per_delivery": cpu_us, "server": {"cpu_s": 1.0, "cpu_pct": 50},
              "server_rss_kb": {"per_client_kb": mem, "cpu_us_per_connect": connect_us} if mem else None,
              "wire": {"bytes_down_per_delivery": down, "bytes_up_per_delivery": up, "requests_per_delivery": 0.1},
              "deliveries_per_s": 1000, "errors": {"clients": 0}}
    return {"section": "transport", "server": "eventlet", "workload": "transport", "way": way, "clients": clients,
            "fresh": fresh, "error": error, "result": None if error else result}


def transport_results(*runs, skipped=(), sweep_clients=100):
    return figures.Results({"runs": list(runs), "skipped": list(skipped),
                            "ways": ["ws", "sio-polling", "short-poll 1s", "long-poll", "sse"],
                            "plan": {"transport": {"sweep_clients": sweep_clients}}})


def test_a_way_s_limit_is_the_first_size_it_did_not_keep_up_at():
    res = transport_results(transport_run("long-poll", 10), transport_run("long-poll", 100),
                            transport_run("long-poll", 1000, p99=4200.0, delivered=0.7))
    info = figures.scale_limits(res)["long-poll"]
    assert (info["held"], info["limit"]) == (100, 1000)
    assert info["why"] == "delivered 70% of the window's messages, p99 4,200 ms > 1,000"


def test_a_way_that_held_everywhere_has_no_limit_and_says_what_was_not_run():
    res = transport_results(transport_run("sse", 1000), transport_run("sse", 3000),
                            skipped=[{"what": "transport sse at 10000 clients",
                                      "why": "20,200 open files needed, the limit is 20,000"}])
    info = figures.scale_limits(res)["sse"]
    assert (info["held"], info["limit"]) == (3000, None)
    assert report.limit_text(info) == "not reached; 10,000 not run (20,200 open files needed, the limit is 20,000)"


def test_a_failed_run_is_a_limit_and_a_short_schedule_is_a_reason():
    res = transport_results(transport_run("ws", 10), transport_run("ws", 100, sent=20.0),
                            transport_run("sse", 10, error="no client could start: HTTP 404"))
    limits = figures.scale_limits(res)
    assert limits["ws"]["limit"] == 100 and limits["ws"]["why"] == "sent 40% of the schedule"
    assert limits["sse"]["held"] is None and limits["sse"]["why"].startswith("failed: no client could start")
    assert list(limits) == ["ws", "sse"]  # the results' order of the ways


def test_idle_memory_only_from_a_fresh_server():
    assert figures.idle_memory(transport_run("ws", 1000, mem=16.0, fresh=True)) == 16.0
    assert figures.idle_memory(transport_run("ws", 100, mem=16.0, fresh=False)) is None


def both_ways(sse_limit_at=None, sse_cpu=55.0, sse_mem=14.0, sse_up=30.0):
    sizes = (10, 100, 1000, 3000, 10000)
    runs = [transport_run("ws", c, cpu_us=50.0, mem=15.0, fresh=c >= 1000) for c in sizes]
    for c in sizes:  # sse stops at its limit, as the driver stops it
        behind = sse_limit_at is not None and c >= sse_limit_at
        runs.append(transport_run("sse", c, cpu_us=sse_cpu, mem=sse_mem, fresh=c >= 1000, up=sse_up,
                                  p99=3000.0 if behind else 12.0, connect_us=600.0))
        if behind:
            break
    return runs


def test_sse_is_the_better_choice_when_it_goes_as_far_as_websocket_for_about_its_cost():
    lines = report.sse_lines(transport_results(*both_ways()))
    text = "\n".join(lines)
    assert "At 10,000 clients, the largest size both kept up at" in text
    assert "1.10x WebSocket's server CPU per delivered message" in text
    assert "So SSE is the better choice than WebSocket where clients mostly receive" in text
    assert "0.6x its server CPU per connection at 10,000 clients (600 µs against 1,000)" in text
    assert "2.00x" in text and "each message sent beside an SSE stream is a whole HTTP request" in text


def test_sse_that_falls_behind_first_is_the_better_choice_only_below_its_limit():
    text = "\n".join(report.sse_lines(transport_results(*both_ways(sse_limit_at=3000))))
    assert "At 1,000 clients, the largest size both kept up at" in text
    assert "SSE fell behind at 3,000 clients where WebSocket held 10,000" in text
    assert "better choice below 3,000 clients" in text


def test_sse_that_costs_more_is_the_choice_only_where_websocket_cannot_pass():
    text = "\n".join(report.sse_lines(transport_results(*both_ways(sse_cpu=100.0, sse_up=14.0, sse_mem=30.0))))
    assert "at 2.00x its server CPU per message and 2.00x its memory per client: the better choice only where " \
           "WebSocket cannot pass" in text
    assert "whole HTTP request" not in text  # bytes up within 1.5x: no sending caveat


def test_no_polling_way_is_acceptable_from_the_first_size_none_kept_up_at():
    res = transport_results(transport_run("long-poll", 10), transport_run("long-poll", 100, p99=600.0),
                            transport_run("long-poll", 1000, delivered=0.5),
                            transport_run("short-poll 1s", 10, p99=990.0),
                            transport_run("short-poll 1s", 100, delivered=0.2),
                            transport_run("ws", 100, p99=9.0))
    text = "\n".join(report.polling_lines(res))
    assert "from 1,000 clients on (at this load): none of them kept up there (held: long-poll up to 100, " \
           "short-poll 1s up to 10)" in text
    assert "where 99% of messages must arrive sooner than 600 ms, the best p99 any polling way reached " \
           "(long-poll, at 100 clients; ws 9.00 ms)" in text


def test_the_ways_are_compared_at_the_largest_size_they_all_ran_at():
    sizes = {("ws", 10): 1, ("sse", 10): 1, ("ws", 100): 1, ("sse", 100): 1, ("ws", 1000): 1}
    assert report.compare_size(sizes, ["ws", "sse"]) == 100
    assert report.compare_size({}, ["ws"]) is None


def test_the_readme_block_is_replaced_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Benchmark\nintro\n{report.README_START}\nold\n{report.README_END}\n\n## Next\n")
    data = {"runs": both_ways(), "skipped": [], "ways": ["ws", "sse"], "mode": "full", "started_local": "today",
            "plan": {"transport": {"sweep_clients": 100}}}
    assert report.update_readme(figures.Results(data), readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("# x\n\n## Benchmark\nintro\n") and text.endswith("\n## Next\n")
    assert "| sse | 10,000 | not reached (the largest size run) | – | 12 | 55 | 14 (at 10,000) |" in text
    assert "How far each way scaled in the full run of today" in text
    readme.write_text("no markers\n")
    assert not report.update_readme(figures.Results(data), readme)


@pytest.mark.parametrize("p99, kept", [(900.0, True), (1100.0, False)])
def test_the_keep_up_rule_holds_p99_to_its_limit(p99, kept):
    assert figures.kept_up(transport_run("sse", 100, p99=p99)["result"]) is kept


def test_an_unmeasurable_cpu_is_not_called_cheap_and_a_slow_p99_sends_latency_to_websocket():
    runs = [transport_run("ws", 100, p99=10.0), transport_run("sse", 100, p99=80.0)]
    runs[0]["result"]["server_cpu_us_per_delivery"] = None
    text = "\n".join(report.sse_lines(transport_results(*runs)))
    assert "about what WebSocket did" not in text and "could not be set against WebSocket's" in text
    assert "Where every message must arrive fastest, WebSocket: SSE's p99 was 8.00x WebSocket's at 100" in text


def test_an_sse_limit_from_slow_sends_says_so():
    runs = both_ways(sse_limit_at=1000)
    runs[-1]["result"]["ack_ms"] = {"p50": 1500.0}
    runs[-1]["result"]["latency_ms"]["p50"] = 1600.0
    text = "\n".join(report.sse_lines(transport_results(*runs)))
    assert "SSE fell behind at 1,000 clients where WebSocket held 10,000 (its sends, HTTP POSTs, were what fell " \
           "behind: answered after 1,500 ms at the median" in text
    assert figures.behind_why(runs[-1]["result"]).endswith("sends answered after 1,500 ms (p50)")


def test_a_size_skipped_for_time_is_not_a_limit_and_a_sweep_with_ways_missing_says_nothing_of_all():
    runs = [transport_run("ws", 10), transport_run("ws", 100), transport_run("sse", 10),
            transport_run("long-poll", 10), dict(transport_run("long-poll", 100, delivered=0.5), section="sweep",
                                                 rate=5)]
    skipped = [{"what": "transport sse at 100 clients", "why": "time budget"},
               {"what": "transport long-poll at 100 clients", "why": "time budget"}]
    res = transport_results(*runs, skipped=skipped)
    res.data["plan"]["transport"]["sweep_clients"] = 10
    text = "\n".join(report.sse_lines(res))
    assert "fell behind" not in text and "up to the 10 clients measured" in text
    assert "WebSocket was measured further: 100 clients" in text
    runs.append(transport_run("short-poll 1s", 10))  # in the study, not in the sweep: "every polling way" is false
    assert "rate sweep" not in "\n".join(report.polling_lines(transport_results(*runs, skipped=skipped)))


def test_before_and_after_compares_transport_runs_only_under_the_same_load():
    old = dict(transport_run("ws", 1000), rate=0.5)  # the study before: every client sent
    new = dict(transport_run("ws", 1000), rate=0.5, senders=200)
    small_old = dict(transport_run("ws", 100), rate=0.5)
    small_new = dict(transport_run("ws", 100), rate=0.5, senders=100)
    before = figures.summarize({"runs": [old, small_old], "plan": {}})
    after = figures.summarize({"runs": [new, small_new], "plan": {}})
    shared = {k for k in before if k.startswith("tr-")} & set(after)
    assert shared == {"tr-cpu/ws/100/50", "tr-p99/ws/100/50"}


def test_the_closing_line_quotes_every_way_s_limit():
    res = transport_results(*both_ways(sse_limit_at=1000), transport_run("long-poll", 10, delivered=0.2),
                            skipped=[{"what": "transport ws at 30000 clients", "why": "time budget"}])
    assert report.limits_line(res) == [
        "- **Scale limits** (clients): ws held every size run, up to 10,000 (30,000: time budget); "
        "long-poll fell behind at 10 (its smallest size); sse fell behind at 1,000 (held 100)."]


def test_sse_dearer_per_message_but_cheap_when_idle_is_the_choice_for_clients_that_mostly_receive():
    text = "\n".join(report.sse_lines(transport_results(*both_ways(sse_cpu=100.0))))
    assert "SSE went as far as WebSocket at 2.00x its server CPU per delivered message in this load" in text
    assert "an idle stream cost about what an idle WebSocket did (0.93x the memory, 0.6x the CPU to connect)" in text
    assert "the better choice where clients mostly receive" in text


def test_sse_crlf_inside_a_chunk_is_one_line_end_not_two():
    events, _, _, _ = parse_sse("data: a\r\ndata: b\r\n\r\n")
    assert [e["data"] for e in events] == ["a\nb"]
