"""write-image's request (steps/write_image/params.py): every malformed field is refused before anything runs,
with a message that names it. Pure: no disk, no root."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.errors import InvalidStepArguments
from reference_service import spec
from steps.write_image import WriteFailed, WriteImageStep
from steps.write_image.params import DEFAULT_TIMEOUT, WriteImageParams, check_ignition, parse_params

IGNITION = json.dumps({"ignition": {"version": "3.2.0"}, "passwd": {"users": [{"name": "core"}]}})
GOOD = {"image_url": "https://mirror.example/rhcos.raw.xz", "target_device": "/dev/sda", "image_sha256": "a" * 64}


@pytest.mark.parametrize(("change", "message"), [
    ({"image_url": "ftp://x/y"}, "image_url must be"),
    ({"image_url": 5}, "must be a string"),
    ({"target_device": "sda"}, "target_device must be a path under /dev/"),
    ({"image_sha256": None}, "image_sha256 or raw_sha256 is required"),
    ({"image_sha256": "abc"}, "64 hexadecimal digits"),
    ({"compression": "bzip2"}, "compression must be one of"),
    ({"image_size": 0}, "image_size must be a positive"),
    ({"image_size": True}, "must be a integer"),
    ({"disk_id": "sda"}, "disk_id must be a path under /dev/"),
    ({"ignition": "{not json"}, "not valid JSON"),
    ({"ignition": "{}"}, "no ignition.version"),
    ({"ignition": IGNITION, "ignition_from_service": True}, "either ignition or ignition_from_service"),
    ({"append_kargs": ["a b"]}, "without spaces"),
    ({"host_id": "nope"}, "host_id must be a UUID"),
    ({"timeout_seconds": -1}, "timeout_seconds must be positive"),
])
def test_malformed_arguments_are_refused(change: dict[str, Any], message: str) -> None:
    obj = {**GOOD, **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(InvalidStepArguments, match=message):
        WriteImageStep().parse_args([json.dumps(obj)])


def test_argument_count_and_shape() -> None:
    with pytest.raises(InvalidStepArguments, match="expects 1 argument"):
        WriteImageStep().parse_args([])
    with pytest.raises(InvalidStepArguments, match="JSON object"):
        WriteImageStep().parse_args(["[]"])
    params = WriteImageStep().parse_args([json.dumps({**GOOD, "timeout_seconds": 900})])
    assert WriteImageStep().timeout(params) == 900
    assert spec.errors("write_image_request", GOOD) == []


def test_a_good_request_parses_to_its_fields_with_the_defaults() -> None:
    params = parse_params([json.dumps({**GOOD, "image_sha256": "A" * 64, "ignition": IGNITION,
                                       "append_kargs": ["console=ttyS0"], "format_disks": ["/dev/sdb"]})])
    assert params == WriteImageParams(
        image_url=GOOD["image_url"], target_device="/dev/sda", image_sha256="a" * 64, ignition=IGNITION,
        append_kargs=["console=ttyS0"], format_disks=["/dev/sdb"], timeout=DEFAULT_TIMEOUT)
    assert params.compression == "auto" and params.ignition_from_service is False


def test_check_ignition_raises_the_error_type_it_is_given() -> None:
    check_ignition(IGNITION.encode(), WriteFailed)
    with pytest.raises(WriteFailed):
        check_ignition(b"[]", WriteFailed)
    with pytest.raises(InvalidStepArguments):
        check_ignition(b'{"ignition": {}}', InvalidStepArguments)
