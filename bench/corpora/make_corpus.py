"""Builds the bench/corpora benchmark corpus from Debian documentation packages.

Real text written by others, in many EU languages, with the defects of real data: partial
translations that fall back to English inside a language's folder (LibreOffice help), packages
whose folder names another language than the text (libreoffice-help-sk holds Czech; fortunes-br
sits in the root folder), the same page shipped several times (en-GB and en-US help, the GFDL
notice of every MATE translation), and short or list-like documents that the quality filters drop.

Sources (Debian 12 "bookworm", fetched with `apt-get download` into DATA/debs through package
lists of its own under DATA/apt (no `sudo`: see apt_options) and unpacked with `dpkg-deb -x` into
DATA/extract; nothing is installed into the system):

  package                       unit of one document                      licence
  libreoffice-help-<ll>         one help page (HTML)                      MPL-2.0
  gnome-user-docs               one Mallard page (.page)                  CC-BY-SA-3.0
  mate-user-guide               one top-level <section> of a DocBook chapter  GFDL-1.1+
  debian-reference-<ll>         one <h2> section of a chapter (HTML)      GPL-2+
  manpages-<ll>[-dev], -dev     one man page (roff, rendered as text)     mixed free licences
                                                                          (see each copyright)
  fortunes-<ll>, -min, -br      one fortune cookie                        mixed free licences

Only languages in occi's table (the 24 EU languages, Catalan, Basque, Galician, Norwegian) are
taken, plus two foreign ones as noise (Russian, Turkish: LibreOffice help and the GNOME/MATE
folders only). `source_hint` is the language folder (or the
language tag in the file name) that the package put the file under, e.g. "de", "pt-BR", "pt_BR",
"C"; it is kept for reference and must not be trusted as the language of the text.

Output: DATA/corpus/part-0000.jsonl, ... with {"id", "text", "source_hint"} per line, about
--shard-mb MB of text (UTF-8 bytes) per shard. Documents are ordered by a hash of their id, so the
order is fixed for a given set of packages and every prefix (--max-mb) mixes all sources and
languages in the same proportions as the whole corpus.

    python bench/corpora/make_corpus.py [--data /tmp/occi-bench] [--out DIR] [--max-mb N]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

# occi's languages (occi/languages.py) as ISO 639-1 codes, plus Norwegian's nb/nn, plus two
# languages that are not run languages, so that language ID has something to drop (taken from
# libreoffice-help-<ll> and the GNOME/MATE help folders only).
OCCI_LANGUAGES = ("bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv "
                  "ca eu gl no nb nn").split()
FOREIGN_LANGUAGES = ("ru", "tr")
LANGUAGES = frozenset(OCCI_LANGUAGES) | frozenset(FOREIGN_LANGUAGES)
# Package names that are not <prefix>-<ll> for an ISO code in LANGUAGES.
EXTRA_PACKAGES = ("libreoffice-help-en-gb", "libreoffice-help-en-us", "libreoffice-help-pt-br",
                  "manpages-pt-br", "manpages-pt-br-dev", "manpages-dev", "debian-reference-pt-br",
                  "fortunes-min", "fortunes-br", "gnome-user-docs", "mate-user-guide")
PREFIXES = ("libreoffice-help-", "manpages-", "debian-reference-", "fortunes-")


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- packages

def apt_options(data: Path) -> list[str]:
    """apt's options for package lists and downloads of its own under DATA/apt, read and written
    as any user: no `sudo`, and the system's lists are neither needed nor changed. The sources are
    the system's (/etc/apt/sources.list*: Debian 12 "bookworm" on the project machine)."""
    state, cache = data / "apt" / "state", data / "apt" / "cache"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return ["-o", f"Dir::State={state}", "-o", f"Dir::State::status={state / 'status'}",
            "-o", f"Dir::Cache={cache}", "-o", "Debug::NoLocking=true"]


def update_lists(options: list[str]) -> None:
    """`apt-get update` into the private lists, once (an empty status file: nothing is installed there)."""
    state = Path(options[1].split("=", 1)[1])
    (state / "status").touch()
    if not any((state / "lists").glob("*_Packages*")):
        log(f"apt-get update: package lists into {state / 'lists'}")
        subprocess.run(["apt-get", *options, "update"], check=True, stdout=subprocess.DEVNULL)


def wanted_packages(options: list[str]) -> list[str]:
    """The documentation packages for LANGUAGES that the (private) apt lists know."""
    names = set(EXTRA_PACKAGES)
    for code in OCCI_LANGUAGES:
        names.update(f"{prefix}{code}" for prefix in PREFIXES)
        names.add(f"manpages-{code}-dev")
    names.update(f"libreoffice-help-{code}" for code in FOREIGN_LANGUAGES)
    known = set(subprocess.run(["apt-cache", *options, "pkgnames"], check=True, capture_output=True,
                               text=True).stdout.split())
    if not known:
        sys.exit("apt-cache knows no packages: `apt-get update` into DATA/apt/state found no lists; "
                 "check /etc/apt/sources.list*")
    return sorted(names & known)


def download(packages: list[str], debs: Path, options: list[str]) -> dict[str, Path]:
    """Each package's .deb in `debs`, fetched with `apt-get download` when not there yet."""
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        log(f"apt-get download: {len(missing)} packages into {debs}")
        subprocess.run(["apt-get", *options, "download", *missing], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
    return {p: sorted(debs.glob(f"{p}_*.deb"))[-1] for p in packages}


def extract(deb: Path, target: Path) -> Path:
    """Unpacks a .deb with dpkg-deb -x once (a .done marker makes re-runs skip it)."""
    done = target / ".done"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        done.touch()
    return target


def language_of(hint: str) -> str:
    """The ISO 639-1 part of a folder name: "pt-BR" -> "pt", "sr@latin" -> "sr", "C" -> "en"."""
    return "en" if hint == "C" else re.split(r"[-_@.]", hint)[0].lower()


# ----------------------------------------------------------------------------- markup to text

BLOCK_TAGS = frozenset("""p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table tr td th tbody thead pre
    blockquote section title subtitle item list terms tree note screen listing br hr figure
    caption para simpara formalpara listitem itemizedlist orderedlist variablelist varlistentry
    term entry row sect1 sect2 sect3 sect4 chapter glossentry glossterm glossdef example
    programlisting literallayout informaltable tgroup step procedure synopsis""".split())
PRE_TAGS = frozenset("pre screen programlisting literallayout synopsis".split())
# Page furniture and metadata of the HTML pages and of Mallard/DocBook files.
HTML_SKIP = frozenset("script style head header aside footer nav noscript".split())
MALLARD_SKIP = frozenset("info".split())  # credits, link titles, descriptions, revisions
DOCBOOK_SKIP = frozenset("indexterm remark titleabbrev".split())
VOID_TAGS = frozenset("br hr img meta link input col area base embed source wbr".split())


class TextExtractor(HTMLParser):
    """Running text of an HTML/XML file, one chunk per top-level `split_tag` element.

    Skips `skip_tags` and the alternative variants LibreOffice's help hides (`hidden` elements
    with a class: MAC, WRITER, CALC, ...; the default variant is hidden without one), puts block
    elements on their own lines and keeps line breaks only inside preformatted blocks.
    """

    def __init__(self, skip_tags: frozenset[str], split_tag: str | None = None):
        super().__init__(convert_charrefs=True)
        self.skip_tags = skip_tags
        self.split_tag = split_tag
        self.split_depth = 0
        self.chunks: list[list[str]] = [[]]
        self.skip: list = []  # [tag, depth] of the element being skipped
        self.pre = 0

    def _skipped(self, tag, attrs) -> bool:
        if tag in self.skip_tags:
            return True
        names = {name for name, _ in attrs}
        return "hidden" in names and "class" in names

    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag == self.skip[0] and tag not in VOID_TAGS:
                self.skip[1] += 1
            return
        if self._skipped(tag, attrs):
            if tag not in VOID_TAGS:
                self.skip = [tag, 1]
            return
        if tag == self.split_tag:
            if self.split_depth == 0:
                self.chunks.append([])
            self.split_depth += 1
        if tag in PRE_TAGS:
            self.pre += 1
        if tag in BLOCK_TAGS:
            self.chunks[-1].append("\n")

    def handle_startendtag(self, tag, attrs):
        if not self.skip and tag in BLOCK_TAGS:
            self.chunks[-1].append("\n")

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip[0]:
                self.skip[1] -= 1
                if self.skip[1] == 0:
                    self.skip = []
            return
        if tag == self.split_tag and self.split_depth:
            self.split_depth -= 1
        if tag in PRE_TAGS and self.pre:
            self.pre -= 1
        if tag in BLOCK_TAGS:
            self.chunks[-1].append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.chunks[-1].append(data if self.pre else data.replace("\n", " "))

    def texts(self) -> list[str]:
        return [tidy("".join(chunk)) for chunk in self.chunks]


def tidy(text: str) -> str:
    """Spaces collapsed inside lines, lines stripped, at most one empty line in a row."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def markup_texts(path: Path, skip_tags: frozenset[str], split_tag: str | None = None) -> list[str]:
    parser = TextExtractor(skip_tags, split_tag)
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return [t for t in parser.texts() if t]


ROFF_NAMED = {"em": "—", "en": "–", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘",
              "cq": "’", "bu": "•", "co": "©", "rg": "®", "hy": "-", "mi": "-", "pl": "+",
              "ti": "~", "ha": "^", "rs": "\\", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›",
              "<=": "≤", ">=": "≥", "->": "→", "<-": "←", "mu": "×", "de": "°", "sc": "§"}
ROFF_ESCAPE = re.compile(r"\\(?:\((..)|\[([^\]]*)\]|f(?:\(..|\[[^\]]*\]|.)|s[-+]?\d+|\*(?:\(..|\[[^\]]*\]|.)"
                         r"|[kn](?:\(..|\[[^\]]*\]|.)|[hvwuNo]'[^']*'|(.))")
ROFF_CHAR = {"-": "-", "e": "\\", " ": " ", "~": " ", "0": " ", "\\": "\\", "'": "'", "`": "`",
             ".": ".", "(": "(", "t": "\t"}
FONT_MACROS = {"B", "I", "SM", "SB", "BR", "BI", "IB", "IR", "RB", "RI"}
BREAK_MACROS = {"PP", "LP", "P", "sp", "br", "TP", "IP", "HP", "TQ", "SH", "SS", "RS", "RE",
                "nf", "fi", "EX", "EE", "in", "ti", "TH", "Sh", "Pp", "Bl", "El", "It"}


def roff_inline(text: str) -> str:
    """Replaces roff escapes (fonts, named characters, strings, sizes) by plain text."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name is not None:
            return ROFF_NAMED.get(name, "")
        if m.group(3) is not None:
            return ROFF_CHAR.get(m.group(3), "")
        return ""
    return ROFF_ESCAPE.sub(sub, text)


def roff_args(rest: str) -> list[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]


def man_text(source: str) -> str | None:
    """A man page (man or mdoc macros) as filled paragraphs; None for `.so` links.

    One line per paragraph, the tag of a .TP item on its own line, an empty line before each
    section heading; no-fill blocks (.nf, .EX) keep their lines.
    """
    paragraphs: list[list[str]] = [[]]
    nofill = tag_next = False

    def add(text: str) -> None:
        nonlocal tag_next
        paragraphs[-1].append(text)
        if nofill or tag_next:
            paragraphs.append([])
            tag_next = False

    for line in source.splitlines():
        if line.startswith((".\\\"", "'\\\"", "\\\"")) or line.strip() in (".", "'"):
            continue
        if not line.startswith((".", "'")):
            text = roff_inline(line)
            if text.strip() or nofill:
                add(text)
            elif paragraphs[-1]:
                paragraphs.append([])
            continue
        macro, _, rest = line[1:].strip().partition(" ")
        if macro == "so":
            return None
        nofill = {"nf": True, "EX": True, "fi": False, "EE": False}.get(macro, nofill)
        if macro in BREAK_MACROS and paragraphs[-1]:
            paragraphs.append([])
        if macro in ("SH", "SS", "Sh"):
            paragraphs[-1:] = [[""], []] if paragraphs[-1] == [] else [paragraphs[-1], [""], []]
        tag_next = tag_next or macro == "TP"
        if macro in FONT_MACROS:
            args = roff_args(rest)
            add(roff_inline(" ".join(args) if macro in ("B", "I", "SM", "SB") else "".join(args)))
        elif macro in ("SH", "SS", "Sh", "IP", "TQ") and rest:
            tag_next = True
            add(roff_inline(" ".join(roff_args(rest))))
        elif macro in ("Nm", "Nd", "Ar", "Fl", "Pa", "Xr", "Em", "Sy", "Dq", "Ql", "Li", "Va"):
            add(roff_inline(rest))
    return tidy("\n".join(" ".join(p) for p in paragraphs if p))


def fortunes(path: Path) -> list[str]:
    """The cookies of a fortune file (separated by lines holding only %); [] if not UTF-8."""
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # the Latin-2 twins of fortunes-pl's *.u8 files
        return []
    return [tidy(c) for c in re.split(r"^%\s*$", source, flags=re.M) if c.strip()]


# ----------------------------------------------------------------------------- sources

def libreoffice_docs(root: Path):
    for lang_dir in sorted((root / "usr/share/libreoffice/help").iterdir()):
        if not lang_dir.is_dir() or language_of(lang_dir.name) not in LANGUAGES:
            continue
        for page in sorted((lang_dir / "text").rglob("*.html")):
            for i, text in enumerate(markup_texts(page, HTML_SKIP)):
                yield page, i, lang_dir.name, text


def help_dir_docs(root: Path, pattern: str, skip_tags: frozenset[str], split_tag: str | None):
    """gnome-user-docs (*.page) and mate-user-guide (*.xml) under usr/share/help/<hint>/."""
    for lang_dir in sorted((root / "usr/share/help").iterdir()):
        if language_of(lang_dir.name) not in LANGUAGES:
            continue
        for page in sorted(lang_dir.rglob(pattern)):
            for i, text in enumerate(markup_texts(page, skip_tags, split_tag)):
                yield page, i, lang_dir.name, text


def debian_reference_docs(root: Path):
    for page in sorted((root / "usr/share/debian-reference").glob("*.html")):
        hint = page.name.split(".")[1]
        for i, text in enumerate(markup_texts(page, HTML_SKIP, split_tag="h2")):
            yield page, i, hint, text


def manpage_docs(root: Path):
    man = root / "usr/share/man"
    for page in sorted(man.rglob("*.gz")):
        parts = page.relative_to(man).parts
        hint = "C" if parts[0].startswith("man") else parts[0]
        try:
            source = gzip.decompress(page.read_bytes()).decode("utf-8")
        except UnicodeDecodeError:
            continue
        text = man_text(source)
        if text:
            yield page, 0, hint, text


def fortune_docs(root: Path):
    base = root / "usr/share/games/fortunes"
    for path in sorted(base.rglob("*")):
        parts = path.relative_to(base).parts
        if path.is_symlink() or not path.is_file() or path.suffix == ".dat" or "off" in parts[:-1]:
            continue
        hint = parts[0] if len(parts) > 1 else "C"
        for i, text in enumerate(fortunes(path)):
            yield path, i, hint, text


def documents(package: str, root: Path):
    """(id, text, source_hint) of every document of an unpacked package, in sorted file order."""
    if package.startswith("libreoffice-help-"):
        found = libreoffice_docs(root)
    elif package == "gnome-user-docs":
        found = help_dir_docs(root, "*.page", MALLARD_SKIP, None)
    elif package == "mate-user-guide":
        found = help_dir_docs(root, "*.xml", DOCBOOK_SKIP, "section")
    elif package.startswith("debian-reference-"):
        found = debian_reference_docs(root)
    elif package.startswith("manpages-"):
        found = manpage_docs(root)
    elif package.startswith("fortunes-"):
        found = fortune_docs(root)
    else:
        raise ValueError(f"no reader for package {package}")
    for path, index, hint, text in found:
        rel = path.relative_to(root / "usr/share").as_posix()
        yield f"{package}/{rel}#{index}", text, hint


# ----------------------------------------------------------------------------- output

def order_key(doc_id: str) -> bytes:
    return hashlib.blake2b(doc_id.encode(), digest_size=8).digest()


def write_shards(docs: list[tuple[str, str, str]], out: Path, shard_mb: float, max_mb: float | None):
    """Writes part-XXXX.jsonl shards of about shard_mb MB of text; returns the documents written."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.jsonl"):
        old.unlink()
    limit = max_mb * 1e6 if max_mb else float("inf")
    written, total, shard, shard_bytes, handle = [], 0, 0, 0, None
    for doc_id, text, hint in docs:
        if total >= limit:
            break
        if handle is None or shard_bytes >= shard_mb * 1e6:
            if handle:
                handle.close()
            handle = open(out / f"part-{shard:04d}.jsonl", "w", encoding="utf-8")
            shard, shard_bytes = shard + 1, 0
        handle.write(json.dumps({"id": doc_id, "text": text, "source_hint": hint}, ensure_ascii=False) + "\n")
        size = len(text.encode("utf-8"))
        shard_bytes += size
        total += size
        written.append((doc_id, text, hint))
    if handle:
        handle.close()
    return written, shard


def summary(docs: list[tuple[str, str, str]], shards: int, out: Path) -> None:
    by_hint: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    by_source: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for doc_id, text, hint in docs:
        size = len(text.encode("utf-8")) / 1e6
        source = re.sub(r"-(?:[a-z]{2}(?:-[a-z]{2})?)(?:-dev)?$", "-<ll>", doc_id.split("/")[0])
        for table, key in ((by_hint, hint), (by_source, source)):
            table[key][0] += 1
            table[key][1] += size
    print(f"{'source_hint':<14}{'docs':>9}{'MB':>9}")
    for hint, (n, mb) in sorted(by_hint.items()):
        print(f"{hint:<14}{n:>9,}{mb:>9.2f}")
    print(f"\n{'source':<22}{'docs':>9}{'MB':>9}")
    for source, (n, mb) in sorted(by_source.items()):
        print(f"{source:<22}{n:>9,}{mb:>9.2f}")
    total = sum(mb for _, mb in by_hint.values())
    print(f"\n{len(docs):,} documents, {total:.1f} MB of text in {shards} shards under {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/occi-bench"),
                        help="scratch folder for debs/ and extract/ (default /tmp/occi-bench)")
    parser.add_argument("--out", type=Path, default=None, help="shard folder (default DATA/corpus)")
    parser.add_argument("--max-mb", type=float, default=None,
                        help="write only the first N MB of text (a prefix of the full corpus)")
    parser.add_argument("--shard-mb", type=float, default=8.0, help="MB of text per shard (default 8)")
    args = parser.parse_args(argv)
    out = args.out or args.data / "corpus"

    options = apt_options(args.data)
    update_lists(options)
    packages = wanted_packages(options)
    debs = download(packages, args.data / "debs", options)
    docs = []
    for package in packages:
        root = extract(debs[package], args.data / "extract" / package)
        found = list(documents(package, root))
        log(f"{package}: {len(found)} documents")
        docs.extend(found)
    docs.sort(key=lambda d: order_key(d[0]))
    written, shards = write_shards(docs, out, args.shard_mb, args.max_mb)
    summary(written, shards, out)


if __name__ == "__main__":
    main()
