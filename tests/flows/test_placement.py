"""Per-process sink partitions: the place of a ``bytewax.run`` process and the partitions it lists."""

from pathlib import Path

import pytest

from flows.placement import LEGACY_PART, ProcessPlace, this_process


def test_outside_bytewax_run_a_process_is_the_only_one() -> None:
    assert this_process(argv=["-i", "3", "-a", "a;b;c;d"], env={}, main_module="pytest") == ProcessPlace(0, 1)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["flows.dataflow:flow", "-w", "2"], {}, (0, 1)),
        (["flows.dataflow:flow", "-i", "1", "-a", "h0:2101;h1:2101;h2:2101"], {}, (1, 3)),
        (["flows.dataflow:flow", "--process-id=2", "--addresses", "h0:1;h1:1;h2:1;h3:1"], {}, (2, 4)),
        (["flows.dataflow:flow"], {"BYTEWAX_PROCESS_ID": "1", "BYTEWAX_ADDRESSES": "h0:1;h1:1"}, (1, 2)),
        (["flows.dataflow:flow", "-i", "0", "-a", "h0:1;h1:1"], {"BYTEWAX_PROCESS_ID": "1"}, (0, 2)),
    ],
)
def test_the_place_follows_bytewax_run_options_then_environment(argv, env, expected) -> None:
    place = this_process(argv=argv, env=env, main_module="bytewax.run")
    assert (place.index, place.count) == expected


def test_a_statefulset_pod_and_its_host_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("flow-0.flow:2101\nflow-1.flow:2101\nflow-2.flow:2101\n")
    env = {"BYTEWAX_POD_NAME": "flow-2", "BYTEWAX_STATEFULSET_NAME": "flow", "BYTEWAX_HOSTFILE_PATH": str(hosts)}
    assert this_process(argv=["flows.dataflow:flow"], env=env, main_module="bytewax.run") == ProcessPlace(2, 3)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8])
def test_every_run_lists_the_same_partitions_and_each_process_owns_its_own(count: int) -> None:
    """Whatever the process count, the partitions listed add up to the same set (so a key's index
    does not change between runs) and each process's own partition is listed by it alone."""
    places = [ProcessPlace(i, count, max_processes=8) for i in range(count)]
    listed = [set(p.listed_parts()) for p in places]
    assert set().union(*listed) == set(places[0].all_parts())
    assert len(places[0].all_parts()) == 9 and LEGACY_PART in places[0].all_parts()
    for place in places:
        owners = [q.index for q, parts in zip(places, listed, strict=True) if place.part in parts]
        assert owners == [place.index]
        assert place.all_parts()[place.part_index(place.part)] == place.part
    assert LEGACY_PART in listed[0]  # a store of the single-partition layout resumes on process 0


def test_more_processes_than_the_partition_set_is_refused() -> None:
    with pytest.raises(ValueError, match="max_processes"):
        ProcessPlace(4, 5, max_processes=4)
