"""The hex transfer ids that COPY writes are the ids `transfer_id` defines."""

import uuid

import pytest

from ledger.services.transfers import _transfer_id_hex, transfer_id


@pytest.mark.parametrize(
    "reference",
    ["escrow-release:1", "escrow-coins:987654321", "deposit:bench-42", "dépôt:ünïcode", ""],
)
def test_the_hex_id_of_a_reference_is_its_uuid5(reference):
    # given a business event's reference
    # when its id is computed both ways
    hex_id = _transfer_id_hex(reference)

    # then they are the same uuid, written as 32 hex digits
    assert len(hex_id) == 32
    assert uuid.UUID(hex_id) == transfer_id(reference)
