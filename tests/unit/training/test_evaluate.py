"""What eval asks the base model, and how it reads a likelihood (no server needed)."""

from __future__ import annotations

from alora_serve.training.evaluate import CLASSIFIERS


def test_context_relevance_asks_about_the_example_s_document() -> None:
    question = CLASSIFIERS["context_relevance"].question({"document_content": "Paris {is} big."})
    assert question.startswith("DOCUMENT: Paris {is} big.\n\n")
    assert question.endswith("Answer with one word: relevant or irrelevant.")


def test_answerability_asks_without_arguments_and_names_its_labels() -> None:
    question = CLASSIFIERS["answerability"].question({})
    assert "documents" in question and question.endswith("answerable or unanswerable.")


def test_a_likelihood_of_one_half_or_more_is_the_positive_label() -> None:
    classifier = CLASSIFIERS["context_relevance"]
    assert [classifier.label_for(x) for x in (0.49, 0.5, 0.9)] == [
        "irrelevant",
        "relevant",
        "relevant",
    ]
