"""The mapping engine: declarative rule tables between swinzoo's parameter names and a foreign layout.

A mapping is an ordered list of rules, each written once and usable in both directions:

* :class:`Rename`  one tensor <-> one tensor (optionally through a pair of named transforms);
* :class:`Fused`   one swinzoo tensor <-> several foreign tensors concatenated on a dim (split/merge qkv);
* :class:`Derived` a foreign buffer that swinzoo recomputes itself: checked against swinzoo's own, then dropped;
* :class:`Ignored` a foreign entry dropped for a stated reason (training state, an unused head, ...).

Patterns use ``{i}``/``{j}`` for indices (``{i+1}`` for the "downsample belongs to the next stage" shift) and
``{rest}`` for a dotted tail. Conversion is strict: every source key is consumed or dropped with a reason,
every target parameter is filled with the right shape, or :class:`MappingError` lists what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import SwinzooError, one_line

Tensor = torch.Tensor
_PLACEHOLDER = re.compile(r"\{([a-z]+)([+-]\d+)?\}")
#: Indices in key names have at most this many digits (no Swin has 10,000 stages or blocks): a key such as
#: ``layers.0.blocks.1e20`` or one with a 5,000-digit index matches no rule instead of reaching ``int()``.
MAX_INDEX_DIGITS = 4


class LayoutError(SwinzooError, ValueError):
    """A layout or a foreign (timm, transformers) config that swinzoo cannot map; names the layout or field."""


class MappingError(SwinzooError, ValueError):
    """A state dict does not fit a mapping; the message lists every key at fault."""

    def __init__(self, summary: str, problems: dict[str, list[str]]):
        self.summary = summary
        self.problems = {k: v for k, v in problems.items() if v}
        lines = [summary]
        for title, items in self.problems.items():
            lines.append(f"  {title} ({len(items)}):")
            lines.extend(f"    {clip_key(item)}" for item in items[:50])
            if len(items) > 50:
                lines.append(f"    ... and {len(items) - 50} more")
        self.lines = lines
        super().__init__("\n".join(lines))

    def terminal_text(self) -> str:
        """One line per key at fault; each line escaped on its own, so a key name cannot forge a line."""
        return "\n".join(one_line(line) for line in self.lines)


def clip_key(text: str, limit: int = 300) -> str:
    """A key from a hostile file can be megabytes long: show its start and end only."""
    return text if len(text) <= limit else f"{text[: limit // 2]}...({len(text)} characters)...{text[-limit // 4 :]}"


class Pattern:
    """A key template such as ``layers.{i+1}.downsample.{rest}``: matches keys and formats them back."""

    def __init__(self, template: str):
        self.template = template
        regex, self.offsets = "", {}
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            regex += re.escape(template[pos : m.start()])
            name, offset = m.group(1), int(m.group(2) or 0)
            self.offsets[name] = offset
            regex += rf"(?P<{name}>.+)" if name == "rest" else rf"(?P<{name}>\d{{1,{MAX_INDEX_DIGITS}}})"
            pos = m.end()
        regex += re.escape(template[pos:])
        self.regex = re.compile(regex + r"\Z")

    def match(self, key: str) -> dict[str, Any] | None:
        m = self.regex.match(key)
        if m is None:
            return None
        out: dict[str, Any] = {}
        for name, value in m.groupdict().items():
            out[name] = value if name == "rest" else int(value) - self.offsets[name]
        return out

    def format(self, values: Mapping[str, Any]) -> str:
        def sub(m: re.Match) -> str:
            name, offset = m.group(1), int(m.group(2) or 0)
            value = values[name]
            return str(value) if name == "rest" else str(int(value) + offset)

        return _PLACEHOLDER.sub(sub, self.template)


def _identity(t: Tensor) -> Tensor:
    return t


@dataclass(frozen=True)
class Transform:
    """A named pair of tensor functions (swinzoo -> foreign and back), e.g. adding a class-token row."""

    name: str
    to_foreign: Callable[[Tensor], Tensor]
    to_swinzoo: Callable[[Tensor], Tensor]


IDENTITY = Transform("identity", _identity, _identity)


@dataclass(frozen=True)
class Rename:
    swinzoo: str
    foreign: str
    transform: Transform = IDENTITY


@dataclass(frozen=True)
class Fused:
    """swinzoo keeps one tensor where the foreign layout keeps ``len(foreign)`` equal chunks along ``dim``."""

    swinzoo: str
    foreign: tuple[str, ...]
    dim: int = 0


@dataclass(frozen=True)
class Derived:
    """A foreign buffer that depends only on architecture: ``expected(model, match)`` gives swinzoo's value,
    or a sentence saying why this buffer cannot belong to that architecture."""

    foreign: str
    expected: Callable[[torch.nn.Module, dict[str, Any]], Tensor | str | None]
    reason: str


@dataclass(frozen=True)
class Ignored:
    foreign: str
    reason: str


Rule = Rename | Fused | Derived | Ignored


@dataclass
class ConversionReport:
    """What happened to every key: the accounting a model card and a reviewer can read."""

    renamed: dict[str, str] = field(default_factory=dict)  # source key -> target key
    dropped: dict[str, str] = field(default_factory=dict)  # source key -> reason
    checked: list[str] = field(default_factory=list)  # buffers compared equal to swinzoo's own

    def summary(self) -> str:
        return f"{len(self.renamed)} tensors mapped, {len(self.checked)} buffers checked, {len(self.dropped)} dropped"


def _rule_patterns(rule: Rule, source_is_swinzoo: bool) -> list[Pattern]:
    if isinstance(rule, Rename):
        return [Pattern(rule.swinzoo if source_is_swinzoo else rule.foreign)]
    if isinstance(rule, Fused):
        return [Pattern(rule.swinzoo)] if source_is_swinzoo else [Pattern(f) for f in rule.foreign]
    return [] if source_is_swinzoo else [Pattern(rule.foreign)]


def convert_state_dict(
    source: Mapping[str, Tensor],
    rules: Iterable[Rule],
    target_shapes: Mapping[str, torch.Size],
    *,
    to_swinzoo: bool,
    model: torch.nn.Module | None = None,
    what: str = "checkpoint",
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Map ``source`` through ``rules`` into a state dict with exactly the keys and shapes of ``target_shapes``.

    ``to_swinzoo`` selects the direction. ``model`` (the swinzoo model) is needed for :class:`Derived` checks.
    """
    rules = list(rules)
    compiled = [(rule, _rule_patterns(rule, source_is_swinzoo=not to_swinzoo)) for rule in rules]
    out: dict[str, Tensor] = {}
    report = ConversionReport()
    unmatched: list[str] = []
    mismatched_buffers: list[str] = []
    consumed: set[str] = set()
    produced_twice: list[str] = []

    def emit(target_key: str, tensor: Tensor, source_key: str) -> None:
        if target_key in out:
            produced_twice.append(f"{target_key} (again from {source_key})")
        out[target_key] = tensor
        report.renamed[source_key] = target_key

    for key in source:
        if key in consumed:
            continue
        for rule, patterns in compiled:
            values = None
            for pat in patterns:
                values = pat.match(key)
                if values is not None:
                    break
            if values is None:
                continue
            tensor = source[key]
            if isinstance(rule, Rename):
                if to_swinzoo:
                    emit(Pattern(rule.swinzoo).format(values), rule.transform.to_swinzoo(tensor), key)
                else:
                    emit(Pattern(rule.foreign).format(values), rule.transform.to_foreign(tensor), key)
                consumed.add(key)
            elif isinstance(rule, Fused):
                if to_swinzoo:
                    parts_keys = [Pattern(f).format(values) for f in rule.foreign]
                    missing = [k for k in parts_keys if k not in source]
                    if missing:
                        unmatched.append(f"{key}: its partners {missing} are missing")
                        consumed.add(key)
                        break
                    target = Pattern(rule.swinzoo).format(values)
                    emit(target, torch.cat([source[k] for k in parts_keys], dim=rule.dim), key)
                    for k in parts_keys:
                        consumed.add(k)
                        report.renamed[k] = target
                else:
                    chunks = torch.chunk(tensor, len(rule.foreign), dim=rule.dim)
                    for f, chunk in zip(rule.foreign, chunks, strict=True):
                        emit(Pattern(f).format(values), chunk.contiguous(), key)
                    consumed.add(key)
            elif isinstance(rule, Derived):
                consumed.add(key)
                try:
                    expected = rule.expected(model, values) if model is not None else None
                except (IndexError, KeyError, AttributeError):
                    expected = "there is no such stage or block in this architecture"
                if expected is None:
                    report.dropped[key] = rule.reason
                elif isinstance(expected, str):
                    mismatched_buffers.append(f"{key} {tuple(tensor.shape)}: {expected}")
                elif tuple(expected.shape) != tuple(tensor.shape):
                    mismatched_buffers.append(
                        f"{key}: stored shape {tuple(tensor.shape)}, swinzoo computes {tuple(expected.shape)} "
                        f"for this architecture ({rule.reason})"
                    )
                elif not torch.equal(expected.to(tensor.dtype), tensor.cpu()) and not torch.allclose(
                    expected.to(torch.float64), tensor.cpu().to(torch.float64), atol=1e-5, rtol=1e-4
                ):
                    mismatched_buffers.append(f"{key}: values differ from swinzoo's own ({rule.reason})")
                else:
                    report.checked.append(key)
                    report.dropped[key] = rule.reason
            else:  # Ignored
                consumed.add(key)
                report.dropped[key] = rule.reason
            break
        else:
            unmatched.append(f"{key} {tuple(source[key].shape)}")

    missing = [f"{k} {tuple(s)}" for k, s in target_shapes.items() if k not in out]
    origin = {target: source_key for source_key, target in report.renamed.items()}
    unexpected = [f"{k} (from {origin.get(k, '?')})" for k in out if k not in target_shapes]
    wrong_shape = [
        f"{k}: converted {tuple(out[k].shape)}, expected {tuple(target_shapes[k])}"
        for k in out
        if k in target_shapes and tuple(out[k].shape) != tuple(target_shapes[k])
    ]
    problems = {
        f"{what} keys no rule consumes": unmatched,
        "target parameters left unfilled": missing,
        "keys the rules produced that the target does not have": unexpected,
        "shape mismatches": wrong_shape,
        "stored buffers that disagree with the architecture (wrong window, resolution or model?)": mismatched_buffers,
        "target keys produced twice": produced_twice,
    }
    if any(problems.values()):
        direction = "into swinzoo" if to_swinzoo else "out of swinzoo"
        raise MappingError(f"cannot convert the {what} {direction}:", problems)
    return out, report


def shapes_of(module_or_state: torch.nn.Module | Mapping[str, Tensor]) -> dict[str, torch.Size]:
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    return {k: v.shape for k, v in state.items()}
