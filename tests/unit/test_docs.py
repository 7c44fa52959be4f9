"""The documentation's rules, held so they stay true (STYLE.md items 13 and 14).

- README.md stays short (at most 300 lines): the depth lives in docs/, one page a topic.
- Every relative link in README.md, docs/*.md and benchmarks/README.md resolves to a file (and
  a `#heading` to a heading of it); every repository path or dotted module the pages name in
  backticks exists.
- No dated history in the pages ("on 2026-12-03 ...", "one hour earlier", "before issue 16"):
  they say what is; `git log` is the history.
- No benchmark figure in a code comment or docstring of the project's packages: the figures
  live in benchmarks/README.md with the command that prints them, and a comment names that
  command instead of quoting its numbers.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_MAX_LINES = 300
PAGES = sorted([README, REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md")])
# Packages whose comments and docstrings must not quote benchmark figures.
CODE_PACKAGES = ("components", "models", "serving", "data", "pipeline", "monitoring", "tfma_batched")

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")

# Dated history: an ISO date in prose, or a phrase that only makes sense on the day it was written.
ISO_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
HISTORY_PHRASES = re.compile(
    r"\b(?:this stop|one hour earlier|an hour earlier|before issue|after issue|issue \d+|this round|"
    r"the previous round|first version|earlier draft|in later sessions|this session|yesterday|"
    r"(?:at|before|since) commit [0-9a-f]{7,40}|commit [0-9a-f]{7,40})\b",
    re.IGNORECASE,
)

# A measured figure in a comment or docstring. Settings written with a unit ("every 0.25 s",
# "5 s apart", "+-30 s of jitter", "20 MiB a batch", "20% of the fare") are not figures: the
# patterns look for throughput units, sizes, shares and times in the phrasing of a measurement.
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_TIME_UNIT = r"(?:s|ms|us|µs|seconds|minutes)\b"
FIGURE_PATTERNS = {
    "throughput": re.compile(
        rf"{_NUMBER}\s*(?:[kKM]\s*)?(?:(?:eval\s+)?rows|examples|requests|records|trips|calls|[KMG]i?B)/s\b"
    ),
    "size": re.compile(
        rf"(?<!budget of )(?<!at most )(?<!up to ){_NUMBER}\s*(?:GiB|MiB|KiB|GB|MB|KB)\b"
        r"(?!/s)(?!\s+(?:a|an|per|each)\b)"
    ),
    "time measured": re.compile(
        rf"{_NUMBER}\s*{_TIME_UNIT}\s*(?:of\s+(?:a|an|the|its)\b|instead\s+of\b|each\b|->|→|to\s+\d)"
    ),
    "time taken": re.compile(
        r"(?:~|≈|\babout\s+|\btook\s+|\btakes\s+|\bspends?\s+|\bspent\s+|\bcosts?\s+|\bsaves?\s+|"
        rf"\bsaved\s+|\badds?\s+|\badded\s+)(?:another\s+)?~?{_NUMBER}\s*{_TIME_UNIT}"
    ),
    "speed-up": re.compile(rf"{_NUMBER}\s*x\s+(?:faster|slower|larger|smaller|bigger|quicker)\b"),
    "share": re.compile(
        rf"{_NUMBER}\s*%\s+of\s+(?:the\s+)?(?:[A-Z]\w+|time|run|wall|samples|profile|the\s+profile)\b"
    ),
}


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    for _, line in prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_anchor(match.group(1))
            count = found.get(slug, 0)
            found[slug] = count + 1
            if count:
                found[f"{slug}-{count}"] = 1
    return set(found)


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def broken_links(path: Path) -> list[str]:
    broken = []
    for number, line in prose_lines(path):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{shown(path)}:{number}: {target}"
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where} (no heading #{anchor} in {resolved.name})")
    return broken


# Paths and dotted modules named in backticks: `serving/gate_checks.py`, `monitoring.quality.trip_key`.
TOP_FOLDERS = (
    "pipeline",
    "monitoring",
    "components",
    "serving",
    "data",
    "models",
    "schemas",
    "tfma_batched",
    "benchmarks",
    "tests",
    "kubeflow",
    "docs",
)
REPO_PATH = re.compile(rf"^(?:{'|'.join(TOP_FOLDERS)})/[\w./-]*\.(?:py|md|pbtxt|yml|lock|in)$")
REPO_FOLDER = re.compile(rf"^(?:{'|'.join(TOP_FOLDERS)})/(?:[\w-]+/)*$")
DOTTED_MODULE = re.compile(
    r"^(?:pipeline|monitoring|components|serving|data|models|schemas|tfma_batched)(?:\.\w+)+$"
)
NOT_A_MODULE = re.compile(r"\.(?:csv|json|log|tflite|py|md|yaml|yml|pbtxt|db|npy|lock|tfrecord|partial|in)$")


def module_exists(dotted: str) -> bool:
    """The module (or package) a dotted name starts with exists, two parts at least.

    Or a top-level package that names the attribute after it (`components.EdgeModel`).
    """
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    package = REPO / parts[0] / "__init__.py"
    return len(parts) == 2 and package.is_file() and parts[1] in package.read_text()


def missing_names(path: Path) -> list[str]:
    """Paths and modules named in backticks that do not exist.

    A line that says "placeholder" may name what is yet to be written.
    """
    missing = []
    for number, line in prose_lines(path):
        if "placeholder" in line.lower():
            continue
        for token in INLINE_CODE.findall(line):
            token = token.strip()
            if any(c in token for c in "<>*{} "):
                continue
            where = f"{shown(path)}:{number}: {token}"
            if REPO_PATH.match(token) or REPO_FOLDER.match(token):
                if not (REPO / token).exists():
                    missing.append(where)
            elif DOTTED_MODULE.match(token) and not NOT_A_MODULE.search(token):
                if not module_exists(token):
                    missing.append(where)
    return missing


def history_phrases(path: Path) -> list[str]:
    found = []
    for number, line in prose_lines(path):
        for pattern in (ISO_DATE, HISTORY_PHRASES):
            for match in pattern.finditer(line):
                found.append(f"{shown(path)}:{number}: {match.group(0)!r} in {line.strip()[:100]}")
    return found


def comments_and_docstrings(path: Path):
    """(line number, text) of every comment and every line of every docstring in `path`."""
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstring = body[0].value
                if isinstance(docstring.value, str):
                    for offset, line in enumerate(docstring.value.splitlines()):
                        yield docstring.lineno + offset, line


def figures_in(text: str) -> list[str]:
    return [
        f"{kind}: {match.group(0)!r}"
        for kind, pattern in FIGURE_PATTERNS.items()
        for match in pattern.finditer(text)
    ]


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the depth into a page under docs/"


def test_every_page_exists_and_is_linked_from_the_readme():
    linked = {target.partition("#")[0] for _, line in prose_lines(README) for target in LINK.findall(line)}
    for page in PAGES:
        if page != README:
            assert str(page.relative_to(REPO)) in linked, f"README.md does not link {shown(page)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert not broken_links(page), "\n".join(broken_links(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_paths_and_modules_exist(page):
    missing = missing_names(page)
    assert not missing, "named in backticks but not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_dated_history(page):
    found = history_phrases(page)
    assert not found, "dated history (state what is; git log is the history):\n" + "\n".join(found)


def test_no_benchmark_figures_in_code_comments():
    found = [
        f"{path.relative_to(REPO)}:{number}: {figure}"
        for package in CODE_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for number, text in comments_and_docstrings(path)
        for figure in figures_in(text)
    ]
    assert not found, (
        "benchmark figures in comments or docstrings (name the benchmark instead; the figure "
        "belongs in benchmarks/README.md):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "text",
    [
        "level 6 deflates at 70 MB/s (10 s of a 26 s ExampleGen for 1.5M trips)",
        "the Evaluator took 27.5 s instead of 32.7 s at 100x",
        "an sdist before it starts (2-3 s each, five times a run)",
        "the first `fit` then spends ~20 s of a 2-core machine",
        "another ~5 s converting tensorflow_transform's",
        "about 0.1 s with TensorFlow loaded, which per chunk was 12% of ExampleGen at 100x",
        "for files 1.22x larger",
        "Trainer 50 s -> 9 s",
        "about 1.9 GB at 100x",
        "Arrow confirms a clean file at about 480,000 rows/s here",
        "13,344 eval rows/s",
    ],
)
def test_the_figure_patterns_catch_measurements(text):
    assert figures_in(text), text


@pytest.mark.parametrize(
    "text",
    [
        "every `flush_s` (0.25 s) a writer thread takes whatever arrived",
        "retries healthz 5 times, 5 s apart",
        "+-30 s on `trip_seconds` and 0-59 s on `trip_start_timestamp`",
        "a big tipper tips more than 20% of the fare",
        "(20 MiB a batch, each record counted as at least 2,560 bytes)",
        "ExampleGen's rows/s in `benchmarks/bench_scale.py` include it",
        "1.5x the largest drop of a healthy model's next week",
        "a file closes at 64 MiB a file or after 300 s",
    ],
)
def test_the_figure_patterns_leave_settings_alone(text):
    assert not figures_in(text), figures_in(text)


def test_the_history_rule_catches_a_diary():
    assert ISO_DATE.search("Figures (2-core machine, 2026-12-04, one run)")
    assert HISTORY_PHRASES.search("The same run at the start of this round, one hour earlier")
    assert HISTORY_PHRASES.search("the eval split ExampleGen drew before issue 16")
    assert not HISTORY_PHRASES.search("the run stops; nothing is pushed")


def test_prose_lines_skip_fenced_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("before\n```\nRun 2026-11-24T17:27:20 on spans 5,6,7,8\n```\nafter\n")
    assert [text for _, text in prose_lines(page)] == ["before", "after"]


def test_the_link_and_name_checks_catch_stale_references(tmp_path):
    (tmp_path / "other.md").write_text("# The pre-flight: `run --check`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#the-pre-flight-run---check) [gone](missing.md) [bad](other.md#nowhere)\n"
        "`serving/gate_checks.py` `serving/checks.py` `monitoring.quality.trip_key` `serving.requests.x`\n"
        "`<root>/logs/weekly.log` `data.csv`\n"
    )
    assert [line.split(": ", 1)[1] for line in broken_links(page)] == [
        "missing.md (no such file)",
        "other.md#nowhere (no heading #nowhere in other.md)",
    ]
    missing = [line.split(": ", 1)[1] for line in missing_names(page)]
    assert missing == ["serving/checks.py", "serving.requests.x"]
