"""``rivermon sim``: the simulated Huanglong Creek, on a broker or offline into a replay CSV."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rivermon.core.config import Config

log = logging.getLogger("rivermon.sim")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``rivermon sim``."""
    p = sub.add_parser(
        "sim", parents=[common],
        help="simulated creek: publish like real nodes, or write a replay CSV (--csv)",
        description="Simulate the creek of the topology under a scenario. Publishes telemetry and "
                    "status like real nodes (one MQTT client per node), obeys aerator cmd, and "
                    "writes every injected event and fault to a truth file. With --csv it runs "
                    "offline, as fast as possible, and writes a replay CSV instead.")
    p.add_argument("--scenario", dest="sim_scenario", metavar="FILE_OR_NAME", default=None,
                   help="a scenario TOML file or a shipped scenario name (see --list) [setting sim_scenario]")
    p.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    p.add_argument("--speed", dest="sim_speed", type=float, default=None,
                   help="simulated seconds per real second: 1 = real time, 0 = as fast as possible "
                        "[setting sim_speed]")
    p.add_argument("--seed", dest="sim_seed", type=int, default=None,
                   help="random seed; the same seed gives the same run [setting sim_seed]")
    p.add_argument("--interval", dest="sim_interval_s", type=float, default=None,
                   help="sampling interval of every node, seconds [setting sim_interval_s]")
    p.add_argument("--truth", dest="sim_truth", metavar="FILE", default=None,
                   help="append the ground truth (JSON lines) to FILE [setting sim_truth]")
    p.add_argument("--start", metavar="RFC3339|UNIX", default=None,
                   help="simulated start time (default: now in real time; otherwise the duration "
                        "before now, at local midnight for --csv)")
    p.add_argument("--duration", metavar="7d|10m|...", default=None,
                   help="how long to simulate (default: forever in real time; the scenario's "
                        "duration, or 7d, otherwise)")
    p.add_argument("--csv", metavar="OUT.csv", default=None,
                   help="offline: no broker, write the readings as a replay CSV")
    p.add_argument("--copies", type=int, default=1,
                   help="N copies of the creek (creeks huanglong, huanglong-2, ...) for load tests")
    p.add_argument("--clients", choices=("auto", "per-node", "pooled"), default="auto",
                   help="one MQTT client per node (real last wills) or one per creek copy "
                        "(auto: per-node up to 400 nodes)")
    p.add_argument("--aerators", choices=("schedule", "always", "off"), default="schedule",
                   help="what aerators do until a cmd arrives (default: their local timer)")
    p.add_argument("--creek", default=None, help="which creek of the topology (default: the first)")
    p.add_argument("--inject", metavar="JSON", default=None,
                   help="send one event to a running simulator and exit, e.g. "
                        "'{\"kind\": \"discharge\", \"outlet\": \"ol-l2\", \"duration\": \"1h\"}'")
    p.add_argument("--write-topology", metavar="FILE", default=None,
                   help="write a topology with the creek copies (for --copies) to FILE and exit")
    p.set_defaults(func=_sim)


def _sim(args: argparse.Namespace, cfg: Config) -> int:
    from rivermon.core.topology import load_topology

    from .scenario import scenario_names

    if args.list:
        for name in scenario_names():
            print(name)
        return 0
    topology = load_topology(cfg.topology or None)
    if args.inject:
        return _inject(args, cfg, topology)
    if args.write_topology:
        from .copies import write_copies_topology
        write_copies_topology(topology, args.copies, args.write_topology, args.creek)
        return 0
    if args.csv and args.copies > 1:
        raise ValueError("--copies is for load on a broker; --csv writes one creek (node ids "
                         "would repeat)")
    from .runner import build_simulations, describe, plan_run

    plan = plan_run(topology, cfg.sim_scenario, seed=cfg.sim_seed, speed=cfg.sim_speed,
                    interval_s=cfg.sim_interval_s, start=args.start, duration=args.duration,
                    copies=args.copies, offline=bool(args.csv), creek_id=args.creek)
    sims, truth = build_simulations(plan, cfg.sim_truth or None, args.aerators)
    log.info("simulation planned", extra=describe(plan))
    try:
        if args.csv:
            from .csvout import run_to_csv
            stats = run_to_csv(sims, args.csv)
            print(json.dumps({"csv": args.csv, "rows": stats.rows, "messages": stats.messages,
                              "backlogs": stats.backlogs, "truth_records": len(truth.records),
                              "seconds": round(stats.seconds, 2)}), file=sys.stderr)
            return 0
        from .live import run_live
        return run_live(sims, plan, cfg, clients=args.clients)
    except ConnectionError as exc:
        print(f"rivermon sim: {exc}", file=sys.stderr)
        return 1
    finally:
        truth.close()


def _inject(args: argparse.Namespace, cfg: Config, topology) -> int:
    """Validate an event here (clear errors), then hand it to the running simulator."""
    from rivermon.core.mqtt import make_client, parse_broker_url

    from .live import inject_topic
    from .runner import pick_creek
    from .scenario import parse_event

    try:
        raw = json.loads(args.inject)
    except ValueError as exc:
        raise ValueError(f"--inject is not JSON: {exc}") from None
    creek = pick_creek(topology, args.creek)
    if not isinstance(raw, dict):
        raise ValueError("--inject must be a JSON object like a scenario [[events]] table")
    parse_event({"at": 0, **raw}, creek, "--inject")
    b = parse_broker_url(cfg.broker)
    client = make_client(b, "", cfg.mqtt_protocol)
    client.connect(b.host, b.port)
    client.loop_start()
    try:
        client.publish(inject_topic(cfg.topic_prefix, creek.id), json.dumps(raw), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    print(f"injected into {creek.id}: {json.dumps(raw)}")
    return 0


def register_bench(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``rivermon bench sim``."""
    p = sub.add_parser("sim", parents=[common],
                       help="simulator speed: a week offline (CSV) and accelerated on a broker")
    p.add_argument("--days", type=float, default=1.0,
                   help="simulated days to publish (the week figure is projected) [default: 1]")
    p.add_argument("--copies", type=int, default=1,
                   help="also publish with this many creek copies [default: 1 = skip]")
    p.add_argument("--bench-broker", metavar="URL", default=None,
                   help="broker to publish to (default: a mosquitto of its own)")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace, cfg: Config) -> int:
    from .bench import run_bench
    return run_bench(args, cfg)
