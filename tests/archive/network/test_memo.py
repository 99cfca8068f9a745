"""The identity-keyed memo behind the remembered negotiation and supported contexts."""

import gc
import weakref

from archive.network.memo import IdentityMemo


class Box:
    pass


def test_the_same_objects_get_the_remembered_answer_and_equal_ones_do_not():
    memo: IdentityMemo[int] = IdentityMemo(4)
    calls = []
    first, other = [Box()], [Box()]
    assert memo.get((id(first[0]),), first, lambda: calls.append(1) or 1) == 1
    assert memo.get((id(first[0]),), first, lambda: calls.append(2) or 2) == 1
    assert memo.get((id(other[0]),), other, lambda: calls.append(3) or 3) == 3
    assert calls == [1, 3]


def test_it_holds_at_most_its_size_dropping_the_oldest():
    memo: IdentityMemo[int] = IdentityMemo(2)
    for n in range(3):
        memo.get((n,), None, lambda n=n: n)
    assert len(memo) == 2
    assert memo.get((0,), None, lambda: -1) == -1     # the oldest was dropped
    assert memo.get((2,), None, lambda: -2) == 2


def test_an_entry_keeps_its_key_objects_alive_so_their_ids_stay_theirs():
    memo: IdentityMemo[str] = IdentityMemo(2)
    box = Box()
    alive = weakref.ref(box)
    memo.get((id(box),), [box], lambda: "answer")
    del box
    gc.collect()
    assert alive() is not None
