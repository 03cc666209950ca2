"""Nodes as rows of numpy columns, so a request over 5,000 node names is a handful of array
operations instead of 5,000 rounds of Python.

A pure-Python loop costs about a microsecond per node and score (measured: 4-6 ms to prioritize
5,000 nodes); the columns below bring a whole request under a millisecond. Each node owns one row
for as long as it exists; a deleted node's row is reused. Per-row columns hold what changes per
node (shape id, zone id, GPUs held per resource); what nodes of one pool share lives once in
`shapes`, and shape-level rules and scores are evaluated per shape, not per row.

Not thread-safe on its own: `ClusterState` serialises writers and readers with its lock (`rows`
writes its memo, so readers need the lock too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np

from extender.model import Node, NodeShape

NO_ROW = -1
ROWS_MEMO_SIZE = 4  # name lists remembered by `rows`: filter's and prioritize's, with room to spare


class NodeTable:
    def __init__(self) -> None:
        self.row_of: dict[str, int] = {}
        self.nodes: list[Node | None] = []  # row -> node (None: a free row)
        self.shapes: list[NodeShape] = []
        self._shape_id: dict[NodeShape, int] = {}
        self.zones: list[str | None] = []
        self._zone_id: dict[str | None, int] = {}
        self._free_rows: list[int] = []
        self.shape_ids = np.zeros(0, dtype=np.int32)
        self.zone_ids = np.zeros(0, dtype=np.int32)
        self.held: dict[str, np.ndarray] = {}  # GPU resource -> row -> held by bound pods
        # row -> `"name":"name`, the node's entry in a FailedNodes map up to its reason (see
        # `wire._reasons`): refusing 4,000 nodes then joins 4,000 strings picked by numpy, which
        # cost ~0.05 ms where interleaving quotes and names per request cost ~0.3 ms (measured).
        self.name_pairs = np.empty(0, dtype=object)
        # Bumped whenever a name gains or loses its row: every memo of `rows` is void from then on.
        self.version = 0
        self._rows_memo: list[tuple[list[str], np.ndarray]] = []  # most recent first
        self._rows_memo_version = 0

    def __len__(self) -> int:
        return len(self.row_of)

    # -- writes --

    def put(self, node: Node, held: Mapping[str, int]) -> Node:
        """Add or replace a node (with what its bound pods hold); returns it with its shape interned."""
        shape_id = self._shape_id.get(node.shape)
        if shape_id is None:
            shape_id = self._shape_id[node.shape] = len(self.shapes)
            self.shapes.append(node.shape)
        shape = self.shapes[shape_id]
        if shape is not node.shape:
            node = Node(node.name, shape, node.zone)
        zone_id = self._zone_id.get(node.zone)
        if zone_id is None:
            zone_id = self._zone_id[node.zone] = len(self.zones)
            self.zones.append(node.zone)
        row = self.row_of.get(node.name)
        if row is None:
            row = self._allocate()
            self.row_of[node.name] = row
            self.name_pairs[row] = f'"{node.name}":"{node.name}'
            self.version += 1
        self.nodes[row] = node
        self.shape_ids[row] = shape_id
        self.zone_ids[row] = zone_id
        for column in self.held.values():
            column[row] = 0
        for resource, count in held.items():
            self._column(resource)[row] = count
        return node

    def reset_held(self, held: Mapping[str, Mapping[str, int]]) -> None:
        """Replace every held count at once (after a pod relist)."""
        for column in self.held.values():
            column[:] = 0
        for name, counts in held.items():
            row = self.row_of.get(name)
            if row is not None:
                for resource, count in counts.items():
                    self._column(resource)[row] = count

    def remove(self, name: str) -> None:
        row = self.row_of.pop(name, None)
        if row is None:
            return
        self.version += 1
        self.nodes[row] = None
        self.name_pairs[row] = None
        for column in self.held.values():
            column[row] = 0
        self._free_rows.append(row)

    def add_held(self, name: str, resource: str, delta: int) -> None:
        row = self.row_of.get(name)
        if row is not None:
            self._column(resource)[row] += delta

    # -- reads --

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """Row of each name, NO_ROW for a name we do not know; read-only (it may be shared).

        The scheduler sends the same NodeNames, in the same order, for pod after pod, and the names
        orjson decodes carry no cached hash: looking 5,000 of them up hashes each and walks a
        dict larger than the caches, while comparing them with a remembered list is one pass of
        string compares (~0.05 ms). Measured in-process at 5,000 nodes: a GPU pod's /filter took
        2.0 -> 1.2 ms of CPU and its /prioritize 2.7 -> 1.8 ms. So the last few lists are remembered
        with their rows, and forgotten as soon as any name gains or loses a row (`version`): a stale
        row would place a pod on another node.
        """
        if self._rows_memo_version != self.version:
            self._rows_memo.clear()
            self._rows_memo_version = self.version
        for index, (known, rows) in enumerate(self._rows_memo):
            if known == names:  # lists of different lengths differ at once; equal ones in one C pass
                if index:
                    self._rows_memo.insert(0, self._rows_memo.pop(index))
                return rows
        rows = np.fromiter(map(self.row_of.get, names, repeat(NO_ROW)), dtype=np.intp, count=len(names))
        rows.flags.writeable = False
        self._rows_memo.insert(0, (list(names), rows))  # a copy: the caller's list may change
        del self._rows_memo[ROWS_MEMO_SIZE:]
        return rows

    def held_of(self, resource: str, rows: np.ndarray) -> np.ndarray:
        column = self.held.get(resource)
        return np.zeros(len(rows), dtype=np.int32) if column is None else column[rows]

    def capacity_of(self, resource: str, rows: np.ndarray) -> np.ndarray:
        per_shape = np.fromiter((s.gpu_capacity(resource) for s in self.shapes), np.int32, len(self.shapes))
        return per_shape[self.shape_ids[rows]]

    # -- helpers --

    def _allocate(self) -> int:
        if self._free_rows:
            return self._free_rows.pop()
        row = len(self.nodes)
        if row == len(self.shape_ids):
            size = max(64, 2 * row)
            self.shape_ids = _grown(self.shape_ids, size)
            self.zone_ids = _grown(self.zone_ids, size)
            self.name_pairs = _grown(self.name_pairs, size)
            self.held = {resource: _grown(column, size) for resource, column in self.held.items()}
        self.nodes.append(None)
        return row

    def _column(self, resource: str) -> np.ndarray:
        column = self.held.get(resource)
        if column is None:
            column = self.held[resource] = np.zeros(len(self.shape_ids), dtype=np.int32)
        return column


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(size, dtype=object) if array.dtype == object else np.zeros(size, dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger
