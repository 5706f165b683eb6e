"""rsdix.training.data_order: the seeded, resumable data order."""
from rsdix.training.data_order import BatchPlan


def test_batch_plan_shards_concatenate_to_single_process_batches():
    single = list(BatchPlan(23, 6, seed=1, stop=10))
    r0 = list(BatchPlan(23, 6, rank=0, world=2, seed=1, stop=10))
    r1 = list(BatchPlan(23, 6, rank=1, world=2, seed=1, stop=10))
    assert [a + b for a, b in zip(r0, r1)] == single
    # one epoch = 3 full batches of a permutation (last 5 items dropped), epochs differ
    ep0 = [i for b in single[:3] for _, i in b]
    assert len(set(ep0)) == 18 and {e for b in single[3:6] for e, _ in b} == {1}
    assert ep0 != [i for b in single[3:6] for _, i in b]
    assert list(BatchPlan(23, 6, seed=1, start=4, stop=10)) == single[4:]  # resume mid-stream
