"""Property-based fuzzing of what the agent takes from the service: poll answers and every step's arguments.

The bar: whatever comes, the agent raises only its own errors (MalformedAnswer for an answer, AgentError for a
step's arguments), never a Python exception that would become a traceback. Examples are bounded
(``FUZZ_EXAMPLES``, default 200 per property) so CI stays fast; raise it to fuzz harder locally.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.answers import BadInstruction, Instruction, decode_json, parse_instruction, parse_steps
from common.errors import AgentError, MalformedAnswer
from common.limits import MAX_NEXT_INSTRUCTION_SECONDS
from steps import registry

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                        max_leaves=20)


answer_keys = st.sampled_from(["instructions", "next_instruction_seconds", "post_step_action", "step_id",
                               "step_type", "args"]) | st.text(max_size=8)
instruction = st.fixed_dictionaries({}, optional={
    "step_id": json_values(answer_keys), "step_type": st.sampled_from(["inventory", "sample-echo", ""]) | scalars,
    "args": st.lists(json_values(answer_keys), max_size=3) | json_values(answer_keys)})
steps_answer = st.fixed_dictionaries({}, optional={
    "instructions": st.lists(instruction | json_values(answer_keys), max_size=5) | json_values(answer_keys),
    "next_instruction_seconds": st.integers() | st.floats() | scalars, "post_step_action": scalars})


@FUZZ
@given(st.one_of(steps_answer, json_values(answer_keys)))
def test_any_poll_answer_is_steps_or_malformed(body: Any) -> None:
    try:
        steps = parse_steps(body, "GET test")
    except MalformedAnswer as exc:
        assert exc.message and len(exc.message) < 2000
        return
    assert 0 <= steps.next_instruction_seconds <= MAX_NEXT_INSTRUCTION_SECONDS
    for item in steps.instructions:
        assert isinstance(item, Instruction | BadInstruction)
        if isinstance(item, Instruction):
            assert item.step_type and all(isinstance(a, str) for a in item.args)
        json.dumps(item._asdict())  # every part is plain data a reply can carry


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_answer_body_decodes_or_is_malformed(raw: bytes) -> None:
    try:
        decode_json(raw, "text/html", "a Steps object", "GET test")
    except MalformedAnswer as exc:
        assert "not JSON" in exc.message


def test_deep_nesting_is_malformed_not_a_recursion_crash() -> None:
    with pytest.raises(MalformedAnswer):
        decode_json(b"[" * 100_000 + b"]" * 100_000, "application/json", "a Steps object", "GET test")
    assert isinstance(parse_instruction({"step_type": "x", "args": [[[[1]]]]}), Instruction)


def _vocabulary(step_cls: type[Any]) -> list[str]:
    """The string literals of a step's module: its field names and enum values, so that generated
    arguments get past the first checks and reach the deep ones."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(step_cls)))  # type: ignore[arg-type]
    words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return sorted(w for w in words if 0 < len(w) <= 40 and "\n" not in w)


STEP_TYPES = sorted(registry.available())


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_every_step_argument_parser_raises_only_agent_errors(step_type: str) -> None:
    step_cls = registry.load(step_type)
    vocab = _vocabulary(step_cls)
    keys = st.sampled_from(vocab) if vocab else st.text(max_size=8)
    leaf = scalars | st.sampled_from(vocab or ["x"])
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
                         max_leaves=25)
    arg = value.map(json.dumps) | st.text(max_size=60) | st.sampled_from(vocab or ["x"])

    @FUZZ
    @given(st.lists(arg, max_size=3))
    def check(args: list[str]) -> None:
        step = step_cls()
        try:
            params = step.parse_args(list(args))
        except AgentError as exc:
            assert exc.message
            return
        assert float(step.timeout(params)) > 0

    check()
