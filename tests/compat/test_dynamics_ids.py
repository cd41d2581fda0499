from __future__ import annotations

import pytest
from django.http import Http404

from compat.dynamics.ids import guid_of, pk_of


def test_a_guid_names_the_record_it_was_made_from():
    assert guid_of(123) == "00000000-0000-0000-0000-00000000007b"
    assert pk_of(guid_of(123)) == 123
    assert pk_of("{00000000-0000-0000-0000-00000000007B}") == 123


@pytest.mark.parametrize(
    "text", ["7b", "not-a-guid", "00000000-0000-0000-0000-000000000000", "ffffffff-" * 3 + "x"]
)
def test_text_that_is_not_a_guid_of_ours_names_no_record(text):
    with pytest.raises(Http404):
        pk_of(text)


def test_a_guid_beyond_our_keys_names_no_record():
    with pytest.raises(Http404):
        pk_of("ffffffff-ffff-ffff-ffff-ffffffffffff")
