"""Token estimates (image tiles, encodings by model) and prompt templates."""

from __future__ import annotations

from rollkit.content.tokens import image_tokens
from rollkit.prompts import render


def test_image_tile_rule_matches_openai_examples():
    assert image_tokens(1024, 1024) == 765
    assert image_tokens(2048, 4096) == 1105
    assert image_tokens(4096, 8192, "low") == 85


def test_templates_substitute_once():
    text = render("score_candidate", question="{{candidate}}", reference="r", candidate="c")
    assert "{{candidate}}" in text and "scale from 0 to 10" in text


def test_encodings_by_model_match_tiktoken_ids():
    from rollkit.content.tokens import encoding_for

    # tiktoken's published ids for "hello world" in each encoding
    assert encoding_for("gpt-4").encode("hello world") == [15339, 1917]
    assert encoding_for("gpt-4.1").encode("hello world") == [24912, 2375]
    assert encoding_for("my-azure-deployment").name == "o200k_base"
