"""The file-level diff a dry run shows, between two manifests (``formats.parse_manifest``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ManifestDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"

    def lines(self) -> list[str]:
        return (
            [f"+ {name}" for name in self.added]
            + [f"~ {name}" for name in self.changed]
            + [f"- {name}" for name in self.removed]
        )


def diff_manifests(live: dict[str, str], new: dict[str, str]) -> ManifestDiff:
    return ManifestDiff(
        added=sorted(set(new) - set(live)),
        changed=sorted(name for name in set(new) & set(live) if new[name] != live[name]),
        removed=sorted(set(live) - set(new)),
    )
