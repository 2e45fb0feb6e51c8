"""The Debian mirror the host's apt uses, read at run time (never hard-coded).

The host names its own release's suites (bookworm on a Debian 12 host); a server of another
release gets the same mirror URIs with its own suite names (trixie, trixie-updates,
trixie-security): Debian's mirrors carry every supported release side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox.release import DEFAULT_RELEASE, RELEASES

SUITE = DEFAULT_RELEASE


@dataclass(frozen=True)
class Source:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Mirrors:
    """The archive's URI (for SUITE, and SUITE-updates if the host has it) and the security
    archive's (SUITE-security): URIs only, the same for every release on one mirror."""

    main: str
    updates: str | None
    security: str | None

    def as_dict(self) -> dict[str, object]:
        return {"main": self.main, "updates": self.updates, "security": self.security}


class MirrorError(ValueError):
    pass


def parse_deb822(text: str) -> list[Source]:
    """Stanzas of a .sources file (deb822); 'Enabled: no' stanzas are left out."""
    sources: list[Source] = []
    for stanza in _stanzas(text):
        fields = {k.lower(): v for k, v in stanza.items()}
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        if not fields.get("uris") or not fields.get("suites"):
            continue
        sources.append(
            Source(
                types=tuple(fields.get("types", "deb").split()),
                uris=tuple(fields["uris"].split()),
                suites=tuple(fields["suites"].split()),
                components=tuple(fields.get("components", "").split()),
                options={k: v for k, v in fields.items()
                         if k not in ("types", "uris", "suites", "components")},
            )
        )  # fmt: skip
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            current[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        key = name.strip()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_one_line(text: str) -> list[Source]:
    """Lines of a sources.list: 'deb [opt=val ...] URI SUITE COMPONENT...'."""
    sources: list[Source] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        kind, rest = words[0], words[1:]
        if kind not in ("deb", "deb-src"):
            continue
        options: dict[str, str] = {}
        if rest and rest[0].startswith("["):
            opt_words = []
            while rest:
                word = rest.pop(0)
                opt_words.append(word)
                if word.endswith("]"):
                    break
            for opt in " ".join(opt_words).strip("[] ").split():
                name, _, value = opt.partition("=")
                options[name] = value
        if len(rest) < 2:
            continue
        sources.append(
            Source(types=(kind,), uris=(rest[0],), suites=(rest[1],),
                   components=tuple(rest[2:]), options=options)
        )  # fmt: skip
    return sources


def read_host_sources(apt_dir: Path = Path("/etc/apt")) -> list[Source]:
    sources: list[Source] = []
    one_line = apt_dir / "sources.list"
    if one_line.is_file():
        sources += parse_one_line(one_line.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def _usable(uri: str) -> bool:
    # The sandbox reaches the mirror only through an HTTP caching proxy.
    return uri.startswith("http://")


def find_mirrors(sources: list[Source], suite: str = SUITE) -> Mirrors:
    binary = [s for s in sources if "deb" in s.types]

    def first_uri(suite_name: str, need_main: bool) -> str | None:
        for source in binary:
            if suite_name in source.suites and (not need_main or "main" in source.components):
                for uri in source.uris:
                    if _usable(uri):
                        return uri.rstrip("/")
        return None

    main = first_uri(suite, need_main=True)
    if main is None:
        https = [s for s in binary if suite in s.suites and "main" in s.components]
        why = " (only https ones: the sandbox's caching proxy needs http)" if https else ""
        raise MirrorError(f"no http 'deb' source for {suite} main in the host's apt config{why}")
    return Mirrors(
        main=main,
        updates=first_uri(f"{suite}-updates", need_main=True),
        security=first_uri(f"{suite}-security", need_main=True),
    )


def release_mirrors(sources: list[Source], release: str) -> Mirrors:
    """The mirrors for RELEASE: the host's own entries for it if it has them, else those of the
    Debian release the host does name (Debian 12's sources name only bookworm)."""
    try:
        return find_mirrors(sources, release)
    except MirrorError as exc:
        own_error = exc
    others = sorted((r for r in RELEASES if r != release), key=RELEASES.__getitem__, reverse=True)
    for suite in others:
        try:
            return find_mirrors(sources, suite)
        except MirrorError:
            continue
    raise MirrorError(
        f"{own_error}, nor for {' or '.join(others)} to take its mirror from"
    ) from own_error


def host_mirrors(apt_dir: Path = Path("/etc/apt"), release: str = DEFAULT_RELEASE) -> Mirrors:
    return release_mirrors(read_host_sources(apt_dir), release)


def guest_sources(mirrors: Mirrors, suite: str = SUITE) -> str:
    """The apt sources a sandbox server gets (deb822), the same mirrors as the host."""
    groups: dict[str, list[str]] = {mirrors.main: [suite]}
    if mirrors.updates:
        groups.setdefault(mirrors.updates, []).append(f"{suite}-updates")
    if mirrors.security:
        groups.setdefault(mirrors.security, []).append(f"{suite}-security")
    return "\n".join(
        f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        for uri, suites in groups.items()
    )
