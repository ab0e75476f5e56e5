"""Words the pages write about counts."""

from digitlab.dashboard.text import counted


def test_counts_read_as_a_person_writes_them():
    assert counted(1, "drawing") == "1 drawing"
    assert counted(0, "drawing") == "0 drawings"
    assert counted(30, "model") == "30 models"
    assert counted(12_000, "image") == "12,000 images"
    assert counted(1, "member was", "members were") == "1 member was"
    assert counted(2, "member was", "members were") == "2 members were"
