"""The benchmark's figures: the pure functions bench/report.py writes its verdicts from."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import figures  # noqa: E402
import report_stress  # noqa: E402
import spy  # noqa: E402
import text  # noqa: E402


def latency_run(server, disk, p50, p99, top, delivered=1.0, section="latency-disk", others=0.1):
    return {"section": section, "server": server, "workload": "latency", "disk": disk, "error": None,
            "others_cpu_cores": others,
            "result": {"latency_ms": {"count": 1000, "p50": p50, "p99": p99, "max": top},
                       "delivered_ratio": delivered}}


def storm_run(server, how, *, connect_s=4.0, cpu_us=300.0, back_ms=None, signal_s=None, missing=0, changed=0):
    result = {"connect_s": connect_s, "server_cpu_us_per_connect": cpu_us, "connected": 10000}
    run = {"section": "storm", "server": server, "workload": "storm", "how": how, "error": None, "result": result}
    if how != "connect":
        result.update({"recovered": True, "recovered_s": 2.5, "t_all_back_wall_ms": back_ms, "missing": missing,
                       "changed": changed, "nothing_missing": missing == 0 and changed == 0})
        run["restart"] = {"t_signal_wall_s": signal_s, "exit_s": 0.5, "start_s": 1.2, "drain_forced": False}
    return run


def scaling_run(server, processes, redis, workload, value):
    result = ({"deliveries_per_s": value} if workload == "fanout" else
              {"latency_ms": {"count": 100, "p50": value / 4, "p99": value}, "delivered_ratio": 1.0})
    return {"section": "scaling", "server": server, "workload": workload, "processes": processes, "redis": redis,
            "config": f"{processes} processes", "error": None, "result": result}


def results(*runs):
    return figures.Results({"runs": list(runs), "plan": {}})


def test_median_skips_missing_values():
    assert figures.median([3, None, 1, float("nan"), 2]) == 2
    assert figures.median([None]) is None


def test_safe_ratio_refuses_a_zero_or_missing_base():
    assert figures.safe_ratio(3, 2) == 1.5
    assert figures.safe_ratio(3, 0) is None
    assert figures.safe_ratio(None, 2) is None


def test_a_disturbed_repeat_is_left_out_of_the_median():
    runs = [latency_run("eventlet", "quiet", 1, 10, 20), latency_run("eventlet", "quiet", 1, 12, 20),
            latency_run("eventlet", "quiet", 1, 900, 950, others=1.5)]
    value, used, every = figures.entry(runs, "result.latency_ms.p99")
    assert (value, len(used), len(every)) == (11, 2, 3)


def test_latency_of_a_server_that_fell_behind_is_what_arrived_meanwhile():
    run = {"result": {"latency_ms": {"count": 0}, "latency_arrivals_ms": {"p99": 4000}, "delivered_ratio": 0.1}}
    assert figures.latency_of("p99")(run) == 4000
    assert figures.behind([run])


def test_latency_disk_figures_per_server_and_disk():
    res = results(latency_run("reference", "quiet", 1, 2, 5), latency_run("reference", "neighbour", 1, 6, 9),
                  latency_run("eventlet", "quiet", 2, 4, 10), latency_run("eventlet", "neighbour", 3, 20, 80))
    f = figures.latency_disk_figures(res)
    assert f["eventlet"]["neighbour"]["p99"][0] == 20
    assert f["reference"]["quiet"]["max"][0] == 5


def test_storm_time_is_from_the_signal_to_the_last_rejoin():
    run = storm_run("eventlet", "sigterm", back_ms=1_000_003_500, signal_s=1_000_000.0)
    assert figures.since_signal_s(run) == 3.5
    assert figures.since_signal_s(storm_run("eventlet", "kill9")) is None


def test_storm_figures_compare_connect_phases_and_count_what_is_missing():
    res = results(storm_run("reference", "connect", connect_s=4, cpu_us=300),
                  storm_run("eventlet", "sigterm", connect_s=9, cpu_us=600, back_ms=1_000_003_000, signal_s=1e6),
                  storm_run("eventlet", "kill9", connect_s=7, cpu_us=500, back_ms=1_000_005_000, signal_s=1e6,
                            missing=3))
    f = figures.storm_figures(res)
    assert f["connect/reference"]["cpu_us"][0] == 300
    assert f["connect/papo"]["cpu_us"][0] == 550
    assert f["sigterm"]["since_signal_s"][0] == 3.0
    assert f["sigterm"]["nothing_missing"] and not f["kill9"]["nothing_missing"]
    assert f["kill9"]["missing"] == 3


def test_scaling_figures_by_server_processes_and_redis():
    res = results(scaling_run("eventlet", 1, False, "fanout", 500_000), scaling_run("eventlet", 1, True, "fanout",
                                                                                   450_000),
                  scaling_run("eventlet", 2, True, "fanout", 900_000), scaling_run("eventlet", 2, True, "latency", 8))
    f = figures.scaling_figures(res)
    assert f[("eventlet", 2, True)]["fanout"][0] == 900_000
    assert f[("eventlet", 2, True)]["p99"][0] == 8
    assert f[("eventlet", 1, False)]["p99"][0] is None


def test_the_cores_busy_in_a_run_are_the_servers_the_generator_and_the_others_together():
    run = dict(scaling_run("eventlet", 2, True, "fanout", 900_000), wall_s=5.0, server_cpu_s=5.5, generator_cpu_s=3.0,
               others_cpu_cores=0.25)
    assert figures.server_cores(run) == pytest.approx(1.1)
    assert figures.busy_cores(run) == pytest.approx(1.1 + 0.6 + 0.25)
    assert figures.busy_cores(dict(run, server_cpu_s=None)) is None  # a server restarted meanwhile
    f = figures.scaling_figures(results(run))[("eventlet", 2, True)]
    assert f["busy"][0] == pytest.approx(1.95) and f["servers_busy"][0] == pytest.approx(1.1)


def test_the_machine_bounds_two_processes_at_the_cpu_it_spends_per_delivery():
    one = dict(scaling_run("eventlet", 1, False, "fanout", 1_000_000), wall_s=5.0, server_cpu_s=3.5,
               generator_cpu_s=3.5, others_cpu_cores=0.1)
    two = dict(scaling_run("eventlet", 2, True, "fanout", 1_000_000), wall_s=5.0, server_cpu_s=5.0,
               generator_cpu_s=3.5, others_cpu_cores=0.1)  # 1.0 + 0.7 + 0.1 = 1.8 cores busy
    figs = figures.scaling_figures(results(one, two))
    c = figures.machine_ceiling(figs, cores=2, papo="eventlet")
    assert c is not None
    assert c["us_per_delivery"] == pytest.approx(1.8)
    assert c["most_per_s"] == pytest.approx(2 / 1.8e-6) and c["most_ratio"] == pytest.approx(2 / 1.8)
    assert c["cores_for_goal"] == pytest.approx(1.7 * 1.8)
    assert figures.machine_ceiling(figs, cores=None, papo="eventlet") is None
    assert figures.machine_ceiling(figures.scaling_figures(results(two)), cores=2, papo="eventlet") is None
    text = "\n".join(report_stress._ceiling(figs, 2, "eventlet"))
    assert "at most 1,111,111 deliveries/s" in text and "1.11x one process" in text
    assert "1.7x would take 3.06 cores" in text


def goals_of(res):
    return {g[0]: g for g in figures.stress_goals(res)}


def test_stress_goals_met_and_not_met():
    res = results(latency_run("reference", "quiet", 1, 2, 5), latency_run("eventlet", "quiet", 1, 4, 20),
                  scaling_run("eventlet", 1, False, "fanout", 500_000),
                  scaling_run("eventlet", 1, True, "fanout", 450_000),
                  scaling_run("eventlet", 2, True, "fanout", 800_000))
    g = goals_of(res)
    assert g["p99_quiet"][4] == 2.0 and g["p99_quiet"][7] is True
    assert g["max_quiet"][4] == 4.0 and g["max_quiet"][7] is False
    assert g["redis_cost"][7] is True
    assert g["two_processes"][4] == pytest.approx(1.6) and g["two_processes"][7] is False
    assert g["persist"][7] is None  # not measured


def test_a_latency_goal_is_not_met_when_papo_fell_behind_whatever_the_ratio():
    res = results(latency_run("reference", "neighbour", 1, 50, 60),
                  latency_run("eventlet", "neighbour", 1, 40, 45, delivered=0.5))
    assert goals_of(res)["p99_neighbour"][7] is False


def test_a_storm_with_a_message_missing_is_not_met_however_fast():
    res = results(storm_run("reference", "connect", connect_s=10),
                  storm_run("eventlet", "kill9", back_ms=1_000_001_000, signal_s=1e6, missing=1))
    g = goals_of(res)
    assert g["storm_kill9"][4] == pytest.approx(0.1) and g["storm_kill9"][7] is False


def test_the_report_says_plainly_which_goals_are_met():
    res = results(latency_run("reference", "quiet", 1, 2, 5), latency_run("eventlet", "quiet", 1, 3, 20))
    page = "\n".join(report_stress.sections(res))
    assert "| p99 latency, quiet disk (Papo / reference) | <= 2x | 1.50x |" in page
    assert "1 of 2 measured goals are met" in page


def persist_run(server, acked):
    return {"section": "server", "server": server, "workload": "persist", "error": None,
            "result": {"acked_per_s": acked}}


def test_persistence_is_set_beside_papo_with_its_messages_in_memory():
    res = figures.Results({"plan": {"papo": "gevent"}, "runs": [
        latency_run("reference", "quiet", 1, 2, 5), latency_run("gevent", "quiet", 1, 3, 20),
        *(persist_run("reference", n) for n in (40_000, 44_000, 46_000)),
        *(persist_run("gevent", n) for n in (15_000, 16_000, 17_000)),
        *(persist_run("gevent-memory", n) for n in (19_000, 20_000, 21_000))]})
    assert figures.persist_floor(res) == (16_000, 20_000, 44_000)
    page = "\n".join(report_stress.sections(res))
    assert "acked 20,000 messages/s, 0.45x the reference's 44,000; Papo, durable, 16,000, 80% of its floor" in page
    without = figures.Results({"plan": {"papo": "gevent"}, "runs": [persist_run("reference", 44_000),
                                                                    persist_run("gevent", 16_000)]})
    assert figures.persist_floor(without) is None


def test_no_storage_sections_without_their_runs():
    assert report_stress.sections(results(latency_run("eventlet", "quiet", 1, 3, 20, section="server"))) == []


def test_profile_summary_of_collapsed_stacks():
    collapsed = "\n".join([
        "MainThread;run (/x/chat/server.py:10);_write (/x/chat/store.py:99);fsync (<built-in>) 6",
        "MainThread;run (/x/chat/server.py:10);switch (/v/site-packages/eventlet/hubs/hub.py:5) 4",
        "garbage",
    ])
    summary = spy.summarize(collapsed)
    assert summary["samples"] == 10
    assert summary["self"][0] == ["fsync (<built-in>)", 0.6]
    assert ["run (chat/server.py)", 1.0] in summary["papo_inclusive"]
    assert dict(summary["modules"])["eventlet"] == 0.4
    assert spy.summarize("") is None


def test_numbers_as_the_report_writes_them():
    assert text.fmt(1234.5) == "1,234"
    assert text.fmt(0.01234) == "0.0123"
    assert text.fmt(None) == "–"
    assert text.ratio_text(12.3) == "12x"
    assert text.ratio_text(1.234) == "1.23x"
    assert text.spread([10, 30, 20]) == "20 (10–30)"
    assert text.columns("a", "b") == ["| a | b |", "|---|---|"]


def test_the_storage_goals_read_the_mode_the_run_measured():
    from chat.config import DEFAULT_ASYNC_MODE

    assert figures.DEFAULT_MODE == DEFAULT_ASYNC_MODE
    runs = (latency_run("reference", "quiet", 1, 2, 5), latency_run("eventlet", "quiet", 1, 3, 20),
            latency_run("gevent", "quiet", 1, 5, 20))
    assert goals_of(results(*runs))["p99_quiet"][4] == 1.5  # a run before the plan named its mode: eventlet
    named = figures.Results({"runs": list(runs), "plan": {"papo": "gevent"}})
    assert figures.measured_mode(named) == "gevent" and goals_of(named)["p99_quiet"][4] == 2.5
