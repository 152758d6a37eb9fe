"""A workflow's steps laid out as a layered graph, for a server-rendered SVG (no JavaScript).

Layer = the longest path from a root through `needs`, so every edge points to a later column.
Within a column, nodes follow the average row of what they need (a barycentre pass, which
removes most crossings in the small DAGs workflows are), and a group's members stay next to
each other so its box encloses only them. This module only computes numbers; the template
(`dashboard/runs/_graph.html`) draws them, escaped like any other page content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.definitions import Workflow

NODE_W = 168  # px
NODE_H = 44
COL_GAP = 64  # between columns, where the edges run
ROW_GAP = 34  # between rows: room for a group's label and padding
MARGIN = 12
GROUP_PAD = 7
GROUP_LABEL = 17  # space above a group's first node for its name
MAX_LABEL = 22  # characters shown in a node; the full text is in its <title>


@dataclass
class Node:
    id: str
    layer: int
    row: int = 0
    x: int = 0
    y: int = 0
    state: str = ""
    label: str = ""  # the second line: the state, or the task for a definition
    group: str = ""
    href: str = ""
    title: str = ""

    @property
    def short_id(self) -> str:
        return self.id if len(self.id) <= MAX_LABEL else self.id[:MAX_LABEL - 1] + "…"

    @property
    def short_label(self) -> str:
        return (self.label if len(self.label) <= MAX_LABEL + 4
                else self.label[:MAX_LABEL + 3] + "…")

    @property
    def text_x(self) -> int:
        return self.x + 10

    @property
    def cx(self) -> int:
        return self.x + NODE_W // 2


@dataclass
class Edge:
    source: str
    target: str
    path: str
    state: str = ""  # the source's state: a finished dependency draws solid


@dataclass
class GroupBox:
    name: str
    x: int
    y: int
    width: int
    height: int

    @property
    def label_x(self) -> int:
        return self.x + 6

    @property
    def label_y(self) -> int:
        return self.y + 13


@dataclass
class Layout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[GroupBox] = field(default_factory=list)
    width: int = 0
    height: int = 0
    node_w: int = NODE_W
    node_h: int = NODE_H


def layers(flow: Workflow) -> dict[str, int]:
    """Each step's column: 0 for roots, else one more than the deepest step it needs."""
    depth: dict[str, int] = {}

    def visit(sid: str, trail: frozenset[str]) -> int:
        if sid in depth:
            return depth[sid]
        # A stored definition passed validation, so it has no cycle; guard anyway.
        needs = [n for n in flow.needs_of.get(sid, ()) if n not in trail and n in flow.steps]
        depth[sid] = 1 + max((visit(n, trail | {sid}) for n in needs), default=-1)
        return depth[sid]

    for sid in flow.steps:
        visit(sid, frozenset())
    return depth


def layout(flow: Workflow, steps: Mapping[str, Any] | None = None, *,
           job_url: Any = None) -> Layout:
    """Positions for every step of `flow`. `steps` maps step id to its StepRun (state,
    job_id, task, attempt, error); without it the definition itself is drawn, each node
    labelled with its task. `job_url(job_id)` gives a node's link."""
    depth = layers(flow)
    order = {sid: index for index, sid in enumerate(flow.steps)}
    columns: dict[int, list[str]] = {}
    for sid in flow.steps:
        columns.setdefault(depth[sid], []).append(sid)

    row_of: dict[str, float] = {}
    for col in sorted(columns):
        members = columns[col]
        centre: dict[str, float] = {}
        for sid in members:
            parents = [row_of[n] for n in flow.needs_of.get(sid, ()) if n in row_of]
            centre[sid] = sum(parents) / len(parents) if parents else float(order[sid])
        # A group sorts by its members' mean centre, so its members stay together.
        group_centre: dict[str, float] = {}
        for name in {flow.steps[s].group for s in members if flow.steps[s].group}:
            inside = [centre[s] for s in members if flow.steps[s].group == name]
            group_centre[name] = sum(inside) / len(inside)

        def key(sid: str, centre: dict[str, float] = centre,
                group_centre: dict[str, float] = group_centre) -> tuple:
            group = flow.steps[sid].group
            return (group_centre[group] if group else centre[sid], group, centre[sid],
                    order[sid])

        members.sort(key=key)
        for row, sid in enumerate(members):
            row_of[sid] = row

    tallest = max((len(m) for m in columns.values()), default=0)
    result = Layout()
    nodes: dict[str, Node] = {}
    for col, members in sorted(columns.items()):
        # Short columns are centred against the tallest one.
        offset = (tallest - len(members)) * (NODE_H + ROW_GAP) / 2
        for row, sid in enumerate(members):
            spec = flow.steps[sid]
            node = Node(id=sid, layer=col, row=row, group=spec.group,
                        x=MARGIN + col * (NODE_W + COL_GAP),
                        y=int(MARGIN + GROUP_LABEL + offset + row * (NODE_H + ROW_GAP)))
            step = steps.get(sid) if steps is not None else None
            if steps is None:
                node.label = spec.task
                node.state = "definition"
                node.title = f"{sid}: {spec.task}"
            else:
                node.state = getattr(step, "state", "") or "pending"
                attempt = getattr(step, "attempt", 0) or 0
                node.label = node.state + (f" · try {attempt}" if attempt > 1 else "")
                error = getattr(step, "error", "") or ""
                node.title = f"{sid} ({spec.task}): {node.state}" + (
                    f" — {error[:300]}" if error else "")
                job_id = getattr(step, "job_id", None)
                if job_id and job_url is not None:
                    node.href = job_url(job_id)
            nodes[sid] = node
            result.nodes.append(node)

    for name, members in flow.groups.items():
        inside = [nodes[s] for s in members if s in nodes]
        if not inside:
            continue
        left = min(n.x for n in inside) - GROUP_PAD
        top = min(n.y for n in inside) - GROUP_PAD - GROUP_LABEL + 4
        right = max(n.x for n in inside) + NODE_W + GROUP_PAD
        bottom = max(n.y for n in inside) + NODE_H + GROUP_PAD
        result.groups.append(GroupBox(name, left, top, right - left, bottom - top))

    height = int(MARGIN * 2 + GROUP_LABEL + tallest * (NODE_H + ROW_GAP) - ROW_GAP + GROUP_PAD)
    detour = False
    for sid, node in nodes.items():
        for need in flow.needs_of.get(sid, ()):
            source = nodes.get(need)
            if source is None:
                continue
            path, below = _route(source, node, result.nodes, result.groups, height)
            detour = detour or below
            result.edges.append(Edge(source=need, target=sid, state=source.state, path=path))

    result.width = MARGIN * 2 + max(1, len(columns)) * (NODE_W + COL_GAP) - COL_GAP
    result.height = height + (ROW_GAP if detour else 0)
    return result


def _route(source: Node, target: Node, nodes: list[Node], groups: list[GroupBox],
           height: int) -> tuple[str, bool]:
    """An SVG path from `source`'s right side to `target`'s left side, and whether it runs
    below everything. An edge that skips columns runs straight through them at a height where
    no node or group box stands (its ends' heights first, then the gaps around those boxes,
    else below all), so it never crosses a box it does not connect."""
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    if target.layer - source.layer <= 1:
        bend = max(24, (x2 - x1) // 2)
        return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 4},{y2}", False
    xa, xb = x1 + COL_GAP, x2 - COL_GAP
    boxes = [(n.y, n.y + NODE_H) for n in nodes if source.layer < n.layer < target.layer]
    boxes += [(g.y, g.y + g.height) for g in groups if g.x < xb and g.x + g.width > xa]

    def clear(y: int) -> bool:
        return all(not (top - 5 <= y <= bottom + 5) for top, bottom in boxes)

    gaps = sorted({bottom + 10 for _, bottom in boxes} | {top - 10 for top, _ in boxes},
                  key=lambda y: abs(y - y1))
    lane = next((y for y in (y1, y2, *gaps) if clear(y) and 0 < y < height), None)
    below = lane is None
    if below:
        lane = height + ROW_GAP // 2
    half = COL_GAP // 2
    return (f"M{x1},{y1} C{x1 + half},{y1} {xa - half},{lane} {xa},{lane} L{xb},{lane} "
            f"C{xb + half},{lane} {x2 - half},{y2} {x2 - 4},{y2}"), below
