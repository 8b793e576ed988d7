"""Knowledge skills with a scripted loopback model: summarize (model, chunked,
extractive fallback, URL), synthesize (citations checked), flashcard, rag_query's
cited answer and arxiv_fetch's optional summaries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.skills import flashcard, rag_index, rag_query, summarize, synthesize
from fleet.skills._common import ModelOutputError, SkillError
from fleet.skills._llm import ModelUnavailable
from tests.fakes.model_servers import FakeOllama, dead_url
from tests.fakes.net_servers import NetServer, arxiv_feed

LOG = logging.getLogger("test.skills.knowledge")
ARTICLE = """Lighthouses guided ships for centuries. The first lighthouses burned wood fires on hilltops.
Later towers used oil lamps with polished reflectors to throw the light further out to sea.

The Fresnel lens, invented in 1822, bent light into a narrow beam visible for over twenty miles.
Keepers trimmed the wicks every few hours through the night and logged the weather.

Automation arrived in the twentieth century. Electric lamps and timers replaced the keepers one by one.
Today most lighthouses are automated and many are museums that teach the history of the Fresnel lens.
"""


def model_config(home: Path, url: str, extra: str = "") -> dict:
    (home / "fleet.toml").write_text(
        f'[models]\nchain = ["ollama"]\n[providers.ollama]\ntype = "ollama"\nbase_url = "{url}"\n'
        f'model = "qwen3:8b"\ntimeout_s = 10.0\n{extra}')
    return load_config(home)


def prompts(server) -> list[str]:
    return ["\n".join(m["content"] for m in r.body["messages"]) for r in server.requests_to("/api/chat")]


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def docs(isolated_home) -> Path:
    d = isolated_home / "docs"
    d.mkdir()
    (d / "lighthouses.md").write_text(ARTICLE)
    (d / "keepers.txt").write_text("Keepers lived in small cottages beside the tower. Many kept gardens and "
                                   "goats on the rocky islands. Supply boats came once a month in good weather.\n")
    return d


def test_summarize_file_with_model(isolated_home, ollama, docs):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply("Lighthouses went from wood fires to Fresnel lenses (1822) to automation.")
    out = summarize.run({"path": str(docs / "lighthouses.md"), "max_words": 50, "agent": "archivist"}, cfg, LOG)
    assert "Fresnel lens, invented in 1822" in prompts(ollama)[0] and "at most 50 words" in prompts(ollama)[0]
    assert out["method"] == "model" and out["model"] == "qwen3:8b" and "1822" in out["summary"]
    saved = Path(out["saved_to"])
    assert saved.parent == Path(cfg["paths"]["knowledge"]) / "summaries" and "method: model" in saved.read_text()


def test_summarize_long_folder_in_chunks_then_combined(isolated_home, ollama, docs):
    cfg = model_config(isolated_home, ollama.url, "[skills.summarize]\nchunk_chars = 500\n")
    for i in range(2):  # ~950 characters in 500-character chunks on paragraph breaks: 2 parts
        ollama.reply(f"part summary {i}")
    ollama.reply("combined summary")
    out = summarize.run({"path": str(docs)}, cfg, LOG)
    sent = prompts(ollama)
    assert out["chunks"] == len(sent) - 1 == 2 and out["summary"] == "combined summary"
    assert "part summary 0" in sent[-1] and "Combine these summaries" in sent[-1]
    assert set(out["documents"]) == {"docs/keepers.txt", "docs/lighthouses.md"}


def test_summarize_falls_back_to_extractive_without_a_model(isolated_home, docs):
    cfg = model_config(isolated_home, dead_url())
    out = summarize.run({"path": str(docs / "lighthouses.md"), "focus": "Fresnel lens"}, cfg, LOG)
    assert out["method"] == "extractive" and "no model provider reachable" in out["model_error"]
    sentences = [s.strip().rstrip(".") for s in ARTICLE.replace("\n", " ").split(". ") if s.strip()]
    parts = [p.strip().rstrip(".") for p in out["summary"].split(". ")]
    assert "Fresnel lens" in out["summary"] and parts and all(parts)
    assert all(p in sentences for p in parts), parts  # every sentence is copied from the source
    assert "method: extractive" in Path(out["saved_to"]).read_text()
    with pytest.raises(ModelUnavailable, match="no model provider reachable"):
        summarize.run({"path": str(docs), "method": "model"}, cfg, LOG)


def test_summarize_folder_reads_the_notes_not_machine_files(isolated_home, docs):
    """"Summarise the notes in knowledge/": prose files are the notes; an index
    like code_index.jsonl beside them is not summarised (only a folder with no
    prose at all falls back to other text files)."""
    cfg = model_config(isolated_home, dead_url())
    (docs / "code_index.jsonl").write_text('{"kind": "function", "name": "run"}\n' * 50)
    out = summarize.run({"path": str(docs)}, cfg, LOG)
    assert set(out["documents"]) == {"docs/keepers.txt", "docs/lighthouses.md"}
    assert '"kind"' not in out["summary"]
    only_index = isolated_home / "index_only"
    only_index.mkdir()
    (only_index / "code_index.jsonl").write_text('{"kind": "function", "name": "run"}\n')
    with pytest.raises(SkillError, match="no prose sentences to extract"):  # read, but nothing to extract
        summarize.run({"path": str(only_index)}, cfg, LOG)


def test_summarize_url_from_loopback_page(isolated_home, ollama):
    cfg = model_config(isolated_home, ollama.url)
    page = ("<html><head><title>Lamps</title><script>var tracking = 1;</script></head><body><nav>Menu</nav>"
            "<article><h1>Oil lamps</h1><p>Argand lamps burned whale oil with a hollow wick.</p></article></body></html>")
    with NetServer() as srv:
        srv.route("GET", "/lamps.html", page, "text/html; charset=utf-8")
        ollama.reply("Argand lamps used a hollow wick.")
        out = summarize.run({"url": f"{srv.url}/lamps.html"}, cfg, LOG)
        srv.route("GET", "/file.pdf", b"%PDF-1.4", "application/pdf")
        with pytest.raises(SkillError, match="not text or HTML"):
            summarize.run({"url": f"{srv.url}/file.pdf"}, cfg, LOG)
    sent = prompts(ollama)[0]
    assert "Argand lamps burned whale oil" in sent and "tracking" not in sent
    assert out["source"] == "Lamps" and out["method"] == "model"


def test_synthesize_cites_sources_and_checks_citations(isolated_home, ollama, docs):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply("Lighthouses moved from fires to lenses [1], and keepers lived beside them [2].")
    out = synthesize.run({"paths": [str(docs / "lighthouses.md"), str(docs / "keepers.txt")],
                          "title": "Lighthouse life", "agent": "archivist"}, cfg, LOG)
    sent = prompts(ollama)[0]
    assert "[1] docs/lighthouses.md" in sent and "[2] docs/keepers.txt" in sent and "goats" in sent
    text = Path(out["document"]).read_text()
    assert out["cited"] == [1, 2] and "## Sources" in text and "1. docs/lighthouses.md" in text
    ollama.reply("Lighthouses are nice. Nothing cited here.")
    with pytest.raises(ModelOutputError, match="cites none"):
        synthesize.run({"paths": [str(docs)], "title": "Uncited"}, cfg, LOG)
    ollama.reply("Claim [1]. Invented claim [7].")
    with pytest.raises(ModelOutputError, match="do not exist"):
        synthesize.run({"paths": [str(docs)], "title": "Invented"}, cfg, LOG)
    assert sorted(p.name for p in (Path(cfg["paths"]["knowledge"]) / "syntheses").iterdir()) == [Path(out["document"]).name]
    with pytest.raises(SkillError, match="at least two documents"):
        synthesize.run({"paths": [str(docs / "keepers.txt")], "title": "One"}, cfg, LOG)


def test_flashcards_parsed_deduplicated_and_saved(isolated_home, ollama, docs):
    cfg = model_config(isolated_home, ollama.url)
    cards = [{"question": "When was the Fresnel lens invented?", "answer": "1822"},
             {"question": "when was the Fresnel  lens invented?", "answer": "In 1822"},
             {"question": "What replaced the keepers?", "answer": "Electric lamps\tand timers"}]
    ollama.reply(json.dumps({"cards": cards}))
    out = flashcard.run({"path": str(docs / "lighthouses.md"), "count": 5}, cfg, LOG)
    assert "Write 5 flashcards" in prompts(ollama)[0] and "Fresnel lens, invented in 1822" in prompts(ollama)[0]
    assert out["count"] == 2 and out["cards"][0] == {"question": cards[0]["question"], "answer": "1822"}
    assert Path(out["tsv"]).read_text().splitlines()[1] == "What replaced the keepers?\tElectric lamps and timers"
    assert json.loads(Path(out["json"]).read_text())["cards"] == out["cards"]
    ollama.reply('{"cards": [{"q": "x"}]}')
    with pytest.raises(ModelOutputError):
        flashcard.run({"path": str(docs / "keepers.txt")}, cfg, LOG)
    assert len(list((Path(cfg["paths"]["knowledge"]) / "flashcards").iterdir())) == 2


def test_rag_query_answer_cites_chunks_or_reports_no_model(isolated_home, ollama, docs):
    cfg = model_config(isolated_home, ollama.url)
    rag_index.run({"paths": [str(docs)], "include_knowledge": False}, cfg, LOG)
    ollama.reply("The Fresnel lens dates from 1822 [1].")
    out = rag_query.run({"query": "Fresnel lens", "answer": True}, cfg, LOG)
    assert out["chunks"][0]["source"].endswith("lighthouses.md") and "invented in 1822" in prompts(ollama)[0]
    assert out["answer"] == "The Fresnel lens dates from 1822 [1]." and out["cited"] == [1]
    cfg_dead = model_config(isolated_home, dead_url())
    out2 = rag_query.run({"query": "Fresnel lens", "answer": True}, cfg_dead, LOG)
    assert out2["answer"] is None and "no model provider reachable" in out2["answer_error"] and out2["count"] >= 1


def test_arxiv_summaries_with_model_and_clear_failure_without(isolated_home, ollama):
    from fleet.skills import arxiv_fetch

    paper = {"id": "2401.00003v1", "title": "Lamps", "abstract": "We measure Argand lamps.", "authors": ["A. B."],
             "categories": ["physics.optics"]}
    with NetServer() as srv:
        srv.route("GET", "/api/query", arxiv_feed([paper]), "application/atom+xml")
        extra = f'[skills.arxiv]\napi_url = "{srv.url}/api/query"\n'
        cfg = model_config(isolated_home, ollama.url, extra)
        ollama.reply("It measures Argand lamps.")
        out = arxiv_fetch.run({"query": "all:lamps", "summarize": True}, cfg, LOG)
        assert out["papers"][0]["summary"] == "It measures Argand lamps." and "We measure Argand lamps." in prompts(ollama)[0]
        cfg_dead = model_config(isolated_home, dead_url(), extra)
        with pytest.raises(SkillError, match=r"fetched 1 papers .* could not summarise them: no model provider"):
            arxiv_fetch.run({"query": "all:lamps", "summarize": True}, cfg_dead, LOG)
