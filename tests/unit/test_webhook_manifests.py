"""Reading manifests for the offline CLI: every bad file is refused with its name and line."""

from __future__ import annotations

import pytest

from inferplane.errors import UserError
from webhook.manifests import dump_json, dump_yaml, parse_documents, read_documents

DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n"


def test_multi_document_yaml_skips_empty_documents_and_records_lines() -> None:
    docs = parse_documents(f"---\n{DEPLOYMENT}---\n---\n{DEPLOYMENT}", "f.yaml")
    assert [d.line for d in docs] == [2, 7]
    assert docs[1].where == "f.yaml document 3 (line 7)"


def test_json_is_read_as_yaml() -> None:
    (doc,) = parse_documents('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}', "p.json")
    assert doc.obj["kind"] == "Pod"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [unclosed", r"f.yaml: line 2, column 1: not valid YAML"),
        ("- a\n- b\n", "not a Kubernetes object"),
        ("apiVersion: v1\n", "not a Kubernetes object"),
        ("a: &a [*a]\napiVersion: v1\nkind: X\n", "refers to itself"),
        ("[" * 150 + "]" * 150, "nested"),
    ],
)
def test_bad_documents_name_the_file_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_documents(text, "f.yaml")


def test_a_billion_laughs_is_refused_before_anything_walks_it() -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(UserError, match="expands to more than"):
        parse_documents("\n".join(lines), "bomb.yaml")


def test_unreadable_and_non_utf8_files(tmp_path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        read_documents(str(tmp_path / "missing.yaml"))
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        read_documents(str(binary))


def test_output_keeps_key_order_and_writes_multiline_text_as_blocks() -> None:
    obj = {"kind": "ConfigMap", "apiVersion": "v1", "data": {"model.yaml": "storage: {}\nfiles: []\n"}}
    text = dump_yaml([obj])
    assert text.startswith("kind: ConfigMap\napiVersion: v1\n")
    assert "model.yaml: |\n    storage: {}\n" in text
    assert dump_json([obj, obj]).count('"kind": "List"') == 1
