"""What each page is about, which pages are near copies, and which pages form a topic family.

A page's *signature* is the set of topic words in its file name and title (report, plan,
"complete", dates, phases and adjectives removed). Status reports, plans, completion notices
and archived scratchpads about one topic rarely share sentences, but they nearly always name
the topic in their file name or title, so the signature finds them where word overlap cannot.
A family gathers the pages whose dominant topic word is the same; the word must also be what
the body talks about (it is weighted by how often the body uses it), so a passing mention does
not pull a page into a family.

Near copies are found with MinHash over word 3-shingles and LSH (datasketch): each page is
hashed once and looked up once, so the cost grows with the number of pages, not its square.
"""

from __future__ import annotations

import functools
import math
import posixpath
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .corpus import Page
from .nearcopies import NearDuplicate, near_groups, shingle_minhash

__all__ = [
    "KIND_RANK",
    "Family",
    "Profile",
    "families",
    "hidden",
    "page_kind",
    "profile",
    "similarity",
    "topic_words",
]

NAME_WEIGHT = 0.5
"""Share of a similarity that comes from the pages' names; the rest comes from their bodies."""
FAMILY_CANDIDATES = 5
"""Topic words tried per page when choosing its family."""
_KEYWORD_HEADROOM = 3  # fetch this many times the keywords wanted, as stop words drop out
_IDF_WEIGHT = 0.1  # rarity only breaks ties between otherwise equal words
_SCORE_DIGITS = 3  # similarities in the plan, rounded for reading
_IDF_CAP = 5.0  # a word on one page only must not outweigh being in the page's name


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that say what kind of page it is, or how it feels about itself, never what it is
#: about. Product names need no entry: they are in most titles, so `max_topic_pages` drops them.
_NOT_TOPICS = _words(
    """a an and are as at be by for from in into is it of on or the to via vs with without
    about after all any before new old our per than that this up out how what why when who
    report reports plan plans planning complete completed completion done summary summaries
    final analysis analyses assessment status validation validated comprehensive executive
    strategy strategic roadmap review result results log logs note notes overview document
    documentation doc docs guide implementation implemented detailed deep current updated
    update draft version success successful achievement evaluation audit finding handoff
    prompt next step mission accomplished milestone progress readme index md enhanced
    advanced improved optimized refined revised focused pragmatic honest real critical
    ultimate master definitive full unified consolidated phase week day sprint level part
    project system development multi core framework service services template model tool
    technical state value use general cycle remaining active data file type excellence
    execution start pilot launch intelligent smart professional control management gate
    transformation pattern work capability"""
)
_WORD_RE = re.compile(r"[a-z][a-z0-9]*|[0-9]+[a-z]*")
_BODY_WORD_RE = re.compile(r"[^\W_]+")
_CAMEL_RE = re.compile(r"([a-z0-9])([A-Z])")
_NUMERIC_RE = re.compile(r"[0-9].*|v[0-9]+|phase[0-9a-z]*|week[0-9]*|day[0-9]*")
_EPIC_RE = re.compile(r"\bepic[\s_.-]*([0-9]+|[a-h])(?![a-z0-9])")
#: File names that say nothing of the topic (a folder's README, an assistant's CLAUDE.md).
_GENERIC_STEMS = frozenset(
    {"readme", "index", "claude", "agents", "summary", "overview", "main", "home"}
)
_KIND_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("scratchpad", re.compile(r"(^|/)[^/]*scratch[^/]*/")),
    ("archive", re.compile(r"(^|/)(archive|archived|deprecated|legacy|old|backup)[^/]*/")),
    ("notice", re.compile(r"complete|completion|success|achieve|accomplish|done\b", re.I)),
    (
        "report",
        re.compile(
            r"report|summary|status|progress|analysis|assessment|validation|result|audit"
            r"|review|evaluation|(^|/)reports?/",
            re.I,
        ),
    ),
    ("plan", re.compile(r"plan|roadmap|strategy|proposal|backlog", re.I)),
)
KIND_RANK = {
    "live": 4.0,
    "plan": 3.0,
    "report": 2.0,
    "notice": 1.0,
    "archive": 0.0,
    "scratchpad": 0.0,
}
"""How strongly a page kind is preferred as the page that stays (the merge target)."""


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # A light plural strip so "reports"/"report" and "hooks"/"hook" meet; not a real stemmer.
    # The length guards keep short words whole ("lies", "gas" and "yes" are not plurals).
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    if word.endswith(("xes", "ches", "shes", "sses")):
        return word[:-2]
    if word.endswith("s") and len(word) > 4 and not word.endswith(("ss", "is", "us")):
        return word[:-1]
    return word


def topic_words(text: str, camel: bool = False) -> list[str]:
    """Split a file name or title into topic words (snake_case, kebab-case, and camelCase
    when `camel`: file names like `PostToolUse.md` need it, titles naming TypeScript do not)."""
    words = _WORD_RE.findall((_CAMEL_RE.sub(r"\1 \2", text) if camel else text).lower())
    return [
        _stem(word)
        for word in words
        if len(word) > 1 and not _NUMERIC_RE.fullmatch(word) and _stem(word) not in _NOT_TOPICS
    ]


def page_kind(path: str) -> str:
    """Classify a page as live, plan, report, (completion) notice, archive or scratchpad."""
    lowered = path.lower()
    for kind, rule in _KIND_RULES[:2]:
        if rule.search(lowered):
            return kind
    name = lowered.rsplit("/", 1)[-1]
    for kind, rule in _KIND_RULES[2:]:
        if rule.search(name) or (kind == "report" and rule.search(lowered)):
            return kind
    return "live"


def hidden(path: str) -> bool:
    """Whether a page is hidden: a part of its path starts with a dot (`.github/x.md`).

    MkDocs leaves such files out of the site (its default `exclude_docs` is `.*`), so a
    page that is not hidden must never go into a hidden one: its content would leave the
    site and its redirect would point at a page that is not there.
    """
    return any(part.startswith(".") for part in path.split("/"))


@dataclass(frozen=True, slots=True)
class Profile:
    """What the topic step needs to know about one page (small enough to send between processes).

    Attributes:
        path: the page path. kind: see `page_kind`.
        signature: topic words of the file name and title (plus `epic-N` when named).
        body: how often the body uses each signature word.
        keywords: the body's most frequent content words, most frequent first.
        minhash: MinHash hash values of the body's word 3-shingles.
        units: number of substantive units.
    """

    path: str
    kind: str
    signature: frozenset[str]
    name_words: frozenset[str]
    body: dict[str, int]
    keywords: tuple[str, ...]
    minhash: np.ndarray
    units: int

    def rank(self, topic: str = "") -> tuple[bool, float, int, int, str]:
        """Sort key: the best page to keep comes first (published, live, named for the
        topic, big); a hidden page (see `hidden`) comes after every other."""
        named = 1.0 if topic in self.name_words else 0.0
        return (
            hidden(self.path),
            -(KIND_RANK[self.kind] + named),
            -self.units,
            self.path.count("/"),
            self.path,
        )


def profile(page: Page, num_perm: int, shingle_words: int, top_keywords: int) -> Profile:
    """Compute the topic profile of a parsed page."""
    stem = page.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name_source = stem
    if stem.lower() in _GENERIC_STEMS:
        # A README's topic is its folder's name (app/observability/hooks/README.md: hooks).
        name_source = " ".join(page.path.split("/")[-3:-1])
    name = set(topic_words(name_source, camel=True))
    # A title that repeats a generic file name ("CLAUDE.md - Service Layer") names no topic
    # with it: CLAUDE.md files of different folders are not one subject.
    title = page.title
    if stem.lower() in _GENERIC_STEMS:
        title = re.sub(re.escape(stem) + r"(\.md)?", " ", title, flags=re.IGNORECASE)
    signature = name | set(topic_words(title))
    epic = _EPIC_RE.search(f"{stem} {page.title}".lower().replace("_", " "))
    if epic:
        name.add(f"epic-{epic.group(1)}")
        signature.add(f"epic-{epic.group(1)}")
    words: list[str] = []
    for unit in page.units:
        if unit.kind not in ("code", "html", "front_matter", "reference", "footnote"):
            # Keys keep symbols (they are facts); topics and near copies are about words.
            words.extend(_BODY_WORD_RE.findall(unit.key.lower()))
    counts: Counter[str] = Counter()
    for word, count in Counter(words).items():  # stem each distinct word once
        if len(word) > 2:  # one- and two-letter words name no topic
            counts[_stem(word)] += count
    body = {word: counts[word] for word in signature if word in counts}
    keywords = tuple(
        word
        for word, _ in counts.most_common(top_keywords * _KEYWORD_HEADROOM)
        if word not in _NOT_TOPICS
    )[:top_keywords]
    return Profile(
        path=page.path,
        kind=page_kind(page.path),
        signature=frozenset(signature),
        name_words=frozenset(name),
        body=body,
        keywords=keywords,
        minhash=shingle_minhash(words, num_perm, shingle_words),
        units=sum(1 for unit in page.units if unit.substantive),
    )


def _idf(profiles: Sequence[Profile]) -> tuple[Counter[str], dict[str, float]]:
    df: Counter[str] = Counter()
    for item in profiles:
        df.update(item.signature)
        df.update(item.keywords)
    total = len(profiles) + 1
    # Smoothed (1 + ...) so that a word in every page of a tiny tree still weighs something.
    return df, {word: math.log(1 + total / count) for word, count in df.items()}


def similarity(a: Profile, b: Profile, idf: dict[str, float]) -> float:
    """Topic similarity in [0, 1] from names and bodies, each weighted by word rarity (IDF).

    The name part is a weighted Dice coefficient (shared weight over the mean of the two
    signatures' weights): kinder than Jaccard to a short name inside a long one
    ("dashboard_fixes" and "dashboard_enhancement_strategic_plan"), stricter than an overlap
    coefficient with one-word names. The body part is the weighted Jaccard of the two pages'
    most frequent words.
    """
    weight_a = sum(idf.get(word, 0.0) for word in a.signature)
    weight_b = sum(idf.get(word, 0.0) for word in b.signature)
    shared = sum(idf.get(word, 0.0) for word in a.signature & b.signature)
    names = 2 * shared / (weight_a + weight_b) if weight_a + weight_b else 0.0
    kw_a, kw_b = set(a.keywords), set(b.keywords)
    kw_union = sum(idf.get(word, 0.0) for word in kw_a | kw_b)
    kw_shared = sum(idf.get(word, 0.0) for word in kw_a & kw_b)
    bodies = kw_shared / kw_union if kw_union else 0.0
    return NAME_WEIGHT * names + (1 - NAME_WEIGHT) * bodies


@dataclass(frozen=True, slots=True)
class Family:
    """Pages about one topic. `members[0]` is the page to keep; the rest merge into it."""

    topic: str
    members: tuple[str, ...]
    similarity: tuple[float, ...]


def families(
    profiles: Sequence[Profile],
    max_topic_pages: int,
    min_similarity: float,
    near: Iterable[NearDuplicate] = (),
    eligible: Iterable[str] | None = None,
    candidates: int = FAMILY_CANDIDATES,
) -> list[Family]:
    """Group pages by their dominant topic word.

    Args:
        profiles: every analysed page.
        max_topic_pages: a word in more signatures than this names no single topic.
        min_similarity: a member whose `similarity` to the kept page is lower leaves the family.
        near: near-duplicate pairs; a page with no topic joins its near copy's family.
        eligible: paths that may be grouped at all (protected pages are left out); all if None.
        candidates: how many of the most live pages compete to be the kept page.

    Returns:
        Families of two or more pages, largest first; each member's similarity to the first.
    """
    allowed = None if eligible is None else set(eligible)
    items = [item for item in profiles if allowed is None or item.path in allowed]
    _, idf = _idf(items)
    df = Counter(word for item in items for word in item.signature)

    def score(item: Profile, word: str) -> float:
        # A word in the page's own name counts double; an `epic-…` tag names its family
        # outright; then body frequency (damped) and a little rarity (idf, capped).
        named = 2.0 if word in item.name_words else 1.0
        epic = 3.0 if word.startswith("epic-") else 0.0
        rarity = _IDF_WEIGHT * min(idf[word], _IDF_CAP)
        return named + epic + math.log1p(item.body.get(word, 0)) + rarity

    def best(item: Profile, allowed_words: Iterable[str]) -> str | None:
        choices = [word for word in allowed_words if 2 <= df[word] <= max_topic_pages]
        return max(choices, key=lambda word: (score(item, word), word), default=None)

    topic = {item.path: best(item, item.signature) for item in items}
    size = Counter(word for word in topic.values() if word)
    for item in items:
        # A page alone under its first choice joins its best topic that others chose too.
        word = topic[item.path]
        if word is None or size[word] == 1:
            shared = [w for w in item.signature if size[w] - (w == word) >= 1 and w != word]
            better = best(item, shared)
            if better is not None:
                size[word or ""] -= 1
                size[better] += 1
                topic[item.path] = better
    # Near copies are one family whatever their names say: their text is the evidence.
    for group in near_groups(near, {item.path for item in items}):
        label = "near copies of " + posixpath.basename(min(group))
        for path in group:
            topic[path] = label
    groups: dict[str, list[Profile]] = defaultdict(list)
    for item in items:
        word = topic[item.path]
        if word:
            groups[word].append(item)
    kept: dict[str, list[tuple[Profile, float]]] = {}
    loose: list[Profile] = []
    for label, members in groups.items():
        head = _central(members, label, idf, candidates)
        members.remove(head)
        members.sort(key=lambda item: item.rank(label))
        kept[label] = [(head, 1.0)]
        for item in members:
            value = similarity(item, head, idf)
            if value >= min_similarity:
                kept[label].append((item, round(value, _SCORE_DIGITS)))
            else:
                loose.append(item)
    for word in [word for word, members in kept.items() if len(members) == 1]:
        del kept[word]
    grouped = {item.path for members in kept.values() for item, _ in members}
    refused = {item.path for item in loose}
    loose.extend(item for item in items if item.path not in grouped and item.path not in refused)
    for item in loose:
        # A page refused by its first family may still fit another topic it names.
        options = [
            (similarity(item, kept[word][0][0], idf), word)
            for word in item.signature
            if word in kept and hidden(kept[word][0][0].path) <= hidden(item.path)
        ]
        value, word = max(options, default=(0.0, ""))
        if word and value >= min_similarity:
            kept[word].append((item, round(value, _SCORE_DIGITS)))
    found = [
        Family(word, tuple(m.path for m, _ in members), tuple(v for _, v in members))
        for word, members in kept.items()
        if len(members) > 1
    ]
    found.sort(key=lambda family: (-len(family.members), family.topic))
    return found


def _central(members: Sequence[Profile], word: str, idf: dict[str, float], count: int) -> Profile:
    """The page to keep: of the `count` most live pages, the one closest to all the others.

    Keeping the most central page (not merely the biggest) makes the family page about the
    family's topic rather than about one niche of it, and keeps each merge's similarity high.
    """
    ranked = sorted(members, key=lambda item: item.rank(word))
    best = ranked[0]
    top_kind = KIND_RANK[best.kind]
    options = [
        item
        for item in ranked[:count]
        if KIND_RANK[item.kind] == top_kind and hidden(item.path) == hidden(best.path)
    ]
    if len(options) > 1:
        best = max(options, key=lambda c: sum(similarity(c, m, idf) for m in members if m is not c))
    return best
