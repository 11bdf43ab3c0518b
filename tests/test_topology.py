"""The shipped topology is complete, and a wrong one is refused with the key named."""

import copy
import tomllib

import pytest

from rivermon.core.topology import TopologyError, default_topology_path, load_topology, parse_topology


@pytest.fixture
def raw():
    return tomllib.loads(default_topology_path().read_text(encoding="utf-8"))


def test_default_creek_matches_the_restoration_report(topology):
    creek = topology.creek("huanglong")
    assert creek.name.zh == "华龙涌" and creek.illustrative
    main = [s for s in creek.segments if s.channel == "main"]
    assert len(main) >= 6 and creek.channel("main").length_m >= 600
    assert any(s.channel == "branch" for s in creek.segments)
    assert any("市场" in s.name.zh for s in creek.segments), "the market reach is its own segment"
    sizes = [o.size for o in creek.outlets]
    assert sizes.count("large") == 4 and sizes.count("small") == 12
    for s in creek.segments:
        assert creek.nodes_in(s.id, "sensor"), f"segment {s.id} has no sensor node"
        assert s.name.zh and s.name.en
    kinds = {n.aerator for n in creek.nodes if n.is_aerator}
    assert kinds == {"micropore", "fountain"}
    assert all(n.rated_w and n.rated_w > 0 for n in creek.nodes if n.is_aerator)


def test_flow_links_segments_and_the_branch_joins_the_main_channel(topology):
    creek = topology.creek("huanglong")
    assert creek.segment("hl-1").downstream == "hl-2"
    assert creek.segment("hl-7").downstream is None
    assert creek.segment("hlb-2").downstream == "hl-5"
    assert creek.is_downstream(("branch", 30), ("main", 500))
    assert not creek.is_downstream(("branch", 30), ("main", 300))
    assert not creek.is_downstream(("main", 300), ("main", 100))
    assert [s.id for s in creek.flow_order()][0] == "hl-1"


def test_api_shape_follows_the_contract(topology):
    api = topology.to_api()
    c = api["creeks"][0]
    assert {"id", "name", "segments", "outlets", "nodes"} <= set(c)
    assert {"id", "name", "channel", "start_m", "end_m", "downstream"} <= set(c["segments"][0])
    assert {"id", "size", "bank", "channel", "chainage_m", "segment"} <= set(c["outlets"][0])
    assert {"id", "kind", "channel", "chainage_m", "segment"} <= set(c["nodes"][0])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["creeks"][0]["nodes"][3].update(chainage_m=700),
     r"creeks\[0\]\.nodes\[3\]\.chainage_m: 700 is beyond channel 'main'"),
    (lambda d: d["creeks"][0]["nodes"][0].pop("kind"), r"creeks\[0\]\.nodes\[0\]\.kind: missing"),
    (lambda d: d["creeks"][0]["nodes"][0].update(kind="robot"), r"nodes\[0\]\.kind: 'robot' is not one of"),
    (lambda d: d["creeks"][0]["segments"][1].update(id="hl-1"), r"segments\[1\]\.id: duplicate id 'hl-1'"),
    (lambda d: d["creeks"][0]["segments"][0].update(end_m=150), r"'hl-1' and 'hl-2' overlap"),
    (lambda d: d["creeks"][0]["outlets"][0].update(size="huge"), r"outlets\[0\]\.size: 'huge'"),
    (lambda d: d["creeks"][0]["nodes"][0].update(id="Bad Id"), r"nodes\[0\]\.id: 'Bad Id' must match"),
    (lambda d: d["creeks"][0]["channels"][1]["joins"].update(channel="nowhere"),
     r"channels\[1\]\.joins\.channel: unknown channel 'nowhere'"),
    (lambda d: d["creeks"][0]["nodes"][0].update(segment="hl-5"), r"nodes\[0\]\.segment: says 'hl-5'"),
    (lambda d: d["creeks"][0]["segments"][0].update(name={"zh": "x"}), r"segments\[0\]\.name\.en: missing"),
])
def test_wrong_topology_names_the_key_and_the_problem(raw, mutate, message):
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(TopologyError, match=message):
        parse_topology(data)


def test_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(TopologyError, match="does not exist"):
        load_topology(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[creeks]\n")
    with pytest.raises(TopologyError, match="not valid TOML"):
        load_topology(bad)
