"""The candidate nodes of one request, as rows of the state's node table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from extender.model import Node
from extender.table import NodeTable


@dataclass(frozen=True)
class Batch:
    """Known nodes only; valid while the caller holds the state lock (rows may be reused after).

    `positions` index the request's own list of names, so narrowing a batch is array work and the
    names are picked out once, at the end (`names`)."""

    table: NodeTable
    request_names: list[str]
    positions: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        if len(self.positions) == len(self.request_names):  # positions only ever narrow, in order:
            return list(self.request_names)  # all of them (a copy: 0.01 ms, picking: 0.15 ms)
        return list(map(self.request_names.__getitem__, self.positions.tolist()))

    @property
    def shape_ids(self) -> np.ndarray:
        return self.table.shape_ids[self.rows]

    @property
    def zone_ids(self) -> np.ndarray:
        return self.table.zone_ids[self.rows]

    def node(self, index: int) -> Node:
        node = self.table.nodes[self.rows[index]]
        assert node is not None, "a batch holds known nodes only"
        return node

    def held(self, resource: str) -> np.ndarray:
        return self.table.held_of(resource, self.rows)

    def capacity(self, resource: str) -> np.ndarray:
        return self.table.capacity_of(resource, self.rows)

    def per_node(self, values: Mapping[str, int]) -> np.ndarray:
        """`values` (a few nodes: where a workload's replicas are) as a column, 0 elsewhere."""
        by_row = np.zeros(len(self.table.nodes), dtype=np.int64)
        for name, value in values.items():
            row = self.table.row_of.get(name)
            if row is not None:
                by_row[row] = value
        return by_row[self.rows]

    def subset(self, keep: np.ndarray) -> Batch:
        """The nodes where boolean array `keep` is true, in order."""
        return Batch(self.table, self.request_names, self.positions[keep], self.rows[keep])

    def representatives(self, ids: np.ndarray) -> dict[int, Node]:
        """One node per distinct value of `ids` (small ints: shape or zone ids), to evaluate a rule
        once for all; found without sorting (np.unique sorted 5,000 ids for each call)."""
        if not len(ids):
            return {}
        first = np.full(int(ids.max()) + 1, -1, dtype=np.intp)
        first[ids[::-1]] = np.arange(len(ids) - 1, -1, -1)  # the last write per id is its first index
        return {int(key): self.node(int(first[key])) for key in np.flatnonzero(first >= 0)}
