"""Long texts with the real embedded model and its real context size: the token estimate is not
under the model's own tokenizer, and the facts at the start, middle and end of a
30,000-character description are all extracted.

Slow-marked; skips with the reason when llama_cpp or the model is missing. One llama.cpp
thread, as in test_embedded_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgenrich.data import DEMO
from kgenrich.errors import ConfigError
from kgenrich.kg.records import Item, Ontology
from kgenrich.pipeline.chunking import TEMPLATE_TOKENS, TRUNCATED, estimate_tokens
from kgenrich.pipeline.extract import build_extract_messages, extract_relations
from kgenrich.pipeline.llm.embedded import ensure_model, llama_cpp_available
from kgenrich.pipeline.llm.factory import make_llm
from kgenrich.settings import ExtractSettings, LLMSettings
from kgenrich.testing.long_text import FACTS, long_description

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not llama_cpp_available(),
        reason="llama-cpp-python not installed (pip install 'llama-cpp-python[server]==0.3.36')",
    ),
]

SAMPLES = {
    "english": "Alien is a 1979 science fiction horror film directed by Ridley Scott and written "
    "by Dan O'Bannon. Starring Sigourney Weaver, it follows the crew of the Nostromo. " * 20,
    "german": "Der Film wurde von Rainer Werner Fassbinder gedreht. Größe und Übermaß. " * 20,
    "cjk": "这部电影由宫崎骏导演，讲述了一个少女的冒险故事。東京で撮影された映画です。" * 20,
    "digits": "ISBN 978-3-16-148410-0, 1979, 2023-11-05, 3.14159265358979 " * 30,
    "punctuation": "!!! ??? ... --- *** ### {}[]()<> \\\\ // || && ~~ '' \"\" " * 20,
    "capitals": "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG XQZJ VBKW " * 20,
    "emoji": "\U0001f3ac\U0001f37f great film \U0001f600\U0001f44d\U0001f3fd " * 20,
    "urls": " ".join(f"https://example.org/films/{i}/cast?id={i * 7}&lang=en" for i in range(60)),
    "long description": long_description(),
    "demo catalog": (DEMO / "catalog.csv").read_text(encoding="utf-8")[:20_000],
}


def _model() -> Path:
    try:
        return ensure_model()
    except ConfigError as err:
        pytest.skip(f"embedded Qwen model unavailable: {err}")


def test_estimate_is_not_under_the_embedded_tokenizer(movies: Ontology) -> None:
    import llama_cpp

    vocab = llama_cpp.Llama(str(_model()), vocab_only=True, verbose=False)

    def real(text: str, *, special: bool = False) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    for name, text in SAMPLES.items():
        as_sent = json.dumps(text, ensure_ascii=False)  # how the text travels in the prompt
        assert estimate_tokens(as_sent) >= real(as_sent), name
    item = Item(id="m1", title="Alien", text={"description": "A 1979 film."})
    for message in build_extract_messages(item, ontology=movies):
        assert estimate_tokens(message["content"]) >= real(message["content"])
    # the chat template's own tokens around two messages and the assistant turn
    template = ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
                "<|im_start|>assistant\n")
    assert real(template, special=True) <= TEMPLATE_TOKENS


def test_real_model_finds_facts_at_start_middle_and_end(tmp_path: Path, movies: Ontology) -> None:
    _model()
    settings = LLMSettings.model_validate(
        {"backend": "embedded", "cache_dir": tmp_path, "embedded_threads": 1})
    # a title the model knows nothing about: with "Alien" it recited the film's cast from memory
    item = Item(id="m1", title="The Quiet Orbit", text={"description": long_description()})
    with make_llm(settings) as llm:
        res = extract_relations([item], llm=llm, ontology=movies, max_per_item=20,
                                context_tokens=settings.context_window(),
                                max_chunks=ExtractSettings().max_chunks, clusters={})
        calls = llm.usage().calls
    counts = res.rejection_counts()
    assert TRUNCATED not in counts, counts
    assert calls > 5  # the default 2048-token context needs many chunks
    got = {(c.relation, c.tail_label.casefold()): c for c in res.kept}
    for sentence, rel, tail, _ in FACTS.values():
        assert (rel, tail.casefold()) in got, (rel, tail, sorted(got))
        assert got[(rel, tail.casefold())].evidence == sentence
