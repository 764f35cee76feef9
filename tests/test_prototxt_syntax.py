"""The lossless prototxt tree: every byte kept, values decoded, errors pointing at a column."""

import pytest
from hypothesis import given, settings, strategies as st

from caffe_nantools.prototxt import Net, ParseError, dump, parse, set_param
from corpus import FILES, MISSING, corpus_params, read


def test_the_corpus_is_there():
    if not FILES:
        pytest.skip(MISSING)
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", corpus_params(FILES))
def test_every_corpus_file_prints_back_byte_identical(path):
    text = read(path)
    assert dump(parse(text, str(path))) == text


def test_crlf_missing_final_newline_tabs_and_comments_are_kept():
    text = "# head\r\nname: 'x'\t# tail\r\n\r\nlayer {\r\n\tname: \"a\"  \r\n}"
    doc = parse(text)
    assert dump(doc) == text
    assert doc.get("name") == "x"
    assert doc.find("layer").get("name") == "a"


def test_empty_and_comment_only_documents():
    for text in ["", "\n\n", "# only a comment", "  # c\n# d\n"]:
        doc = parse(text)
        assert doc.children == [] and dump(doc) == text


def test_message_forms_and_separators():
    text = 'a { x: 1 } b: { y: 2; } c < z: 3 >, d: 4; e: "s",'
    doc = parse(text)
    assert [n.name for n in doc.children] == ["a", "b", "c", "d", "e"]
    assert doc.find("b").get("y") == 2
    assert doc.find("c").get("z") == 3
    assert dump(doc) == text


@pytest.mark.parametrize(
    "raw, value",
    [
        ("12", 12),
        ("-3", -3),
        ("0x1F", 31),
        ("017", 15),
        ("1.5", 1.5),
        ("-2.5e-3", -2.5e-3),
        ("1e10", 1e10),
        (".5", 0.5),
        ("3f", 3.0),
        ("1.F", 1.0),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("- inf", "-inf"),
        ("nan", "nan"),
        ("-nan", "-nan"),
        ("TRAIN", "TRAIN"),
        ("true", "true"),
        ('"a\\"b"', 'a"b'),
        ("'it\\'s'", "it's"),
        ('"tab\\tnl\\n"', "tab\tnl\n"),
        ('"\\101\\x42"', "AB"),
        ('"con" \'cat\' "ed"', "concated"),
        ('""', ""),
    ],
)
def test_scalar_values_decode(raw, value):
    node = parse(f"v: {raw}").find("v")
    assert node.value == value
    assert type(node.value) is type(value)


def test_list_syntax_and_repeated_fields_read_together():
    doc = parse("dim: 1 dim: [2, 3] dim: [] stage: ['a', \"b\"]")
    assert doc.get_all("dim") == [1, 2, 3]
    assert doc.get_all("stage") == ["a", "b"]
    assert doc.find_all("dim")[1].raw_values == ["2", "3"]


def test_get_skips_messages_and_defaults():
    doc = parse("shape { dim: 1 } name: 'n'")
    assert doc.get("shape", "none") == "none"
    assert doc.get("missing", 7) == 7
    assert doc.find("shape").get_all("dim") == [1]


def test_positions_are_one_based_lines_and_columns():
    doc = parse("# c\nlayer {\n  name: 'a'\n}\n")
    layer = doc.find("layer")
    assert (layer.line, layer.col) == (2, 1)
    assert (layer.find("name").line, layer.find("name").col) == (3, 3)


@pytest.mark.parametrize(
    "text, where, message",
    [
        (
            "layer {\n  name: 'a'\n",
            "3:1",
            "expected '}' to close 'layer' opened at 1:1, found the end of the file",
        ),
        ("a: 1 }", "1:6", "expected a field name, found '}'"),
        (
            "layer {\n  name 'a'\n}",
            "2:8",
            "expected ':' or '{' after field name 'name', found string 'a'",
        ),
        ("a:", "1:3", "expected a value, found the end of the file"),
        ("a: }", "1:4", "expected a value, found '}'"),
        ("a: - x", "1:6", "expected a number after '-', found 'x'"),
        ("a: [1, 2", "1:9", "expected ',' or ']', found the end of the file"),
        ("a: [1 2]", "1:7", "expected ',' or ']' in the list, found '2'"),
        ("a: 'open\nb: 1", "1:4", "unterminated string (strings end on the same line)"),
        ("a: 12ab", "1:4", "invalid number '12ab'"),
        ("a: 1\nb: @", "2:4", "unexpected character '@'"),
        ("{ a: 1 }", "1:1", "expected a field name, found '{'"),
        ("x {\n  y: 1\n>", "3:1", "expected a field name or '}', found '>'"),
        # At the end of the file the error points just past the last character (a CR is not one).
        ("a: -", "1:5", "expected a number after '-', found the end of the file"),
        ("a: [1,", "1:7", "expected a value, found the end of the file"),
        ("a {\r", "1:4", "expected '}' to close 'a' opened at 1:1, found the end of the file"),
        (
            "a: 'x'\n  'y' b",
            "2:8",
            "expected ':' or '{' after field name 'b', found the end of the file",
        ),
        ("a: [[1]]", "1:5", "expected a value, found '['"),
        ("a: 1 ;;", "1:7", "expected a field name, found ';'"),
    ],
)
def test_parse_errors_say_where_and_what_was_expected(text, where, message):
    with pytest.raises(ParseError) as info:
        parse(text, "net.prototxt")
    assert str(info.value) == f"net.prototxt:{where}: {message}"


def test_parse_error_context_shows_the_line_and_a_caret():
    with pytest.raises(ParseError) as info:
        parse("a: 1\n  b = 2\n", "f")
    assert info.value.context() == "  b = 2\n    ^"
    assert (info.value.line, info.value.col) == (2, 5)


def test_deep_nesting_is_no_recursion_problem():
    text = "a {" * 5000 + "}" * 5000
    assert dump(parse(text)) == text
    with pytest.raises(ParseError):
        parse("a {" * 5000)


# --- editing -------------------------------------------------------------------------------
NET = """\
name: "n"  # the net
layer {
  name: "a"
  top: "a"
}  # after a
layer {
  name: "b"
}
"""


def test_inserting_and_removing_a_node_restores_the_text():
    doc = parse(NET)
    snippet = parse('\nlayer {\n  name: "check"\n}').children[0]
    doc.insert(2, snippet)
    edited = dump(doc)
    assert edited == NET.replace("}  # after a\n", '}  # after a\nlayer {\n  name: "check"\n}\n')
    doc.remove(snippet)
    assert dump(doc) == NET


def test_inserting_into_a_message_goes_before_its_closing_brace():
    doc = parse("layer { name: 'a' },\nlayer { }")
    first, second = doc.children
    first.insert(99, parse(" top: 'x'").children[0])
    second.insert(0, parse(" top: 'y'").children[0])
    # The space before '}' was the rest of the line of 'a', so it stays after 'a'.
    assert dump(doc) == "layer { name: 'a'  top: 'x'},\nlayer {  top: 'y'}"
    assert [c.name for c in first.children] == ["name", "top"]
    with pytest.raises(TypeError):
        first.find("name").insert(0, parse("x: 1").children[0])


def test_splice_inserts_many_nodes_in_one_pass_keeping_their_order():
    doc = parse(NET)
    name, a, b = doc.children
    new = parse("\nx: 1\ny: 2\nz: 3").children
    doc.splice(after={id(a): new[:2]}, before={id(name): new[2:]})
    assert [n.name for n in doc.children] == ["z", "name", "layer", "x", "y", "layer"]
    assert all(n.parent is doc for n in new)
    for node in new:
        doc.remove(node)
    assert dump(doc) == NET


def test_insert_after_a_child():
    doc = parse("a: 1\nb: 2\n")
    doc.insert_after(doc.children[0], parse("\nc: 3").children[0])
    assert dump(doc) == "a: 1\nc: 3\nb: 2\n"


# --- properties ----------------------------------------------------------------------------
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
scalars = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "-nan", "0x1f", "1e-5", "TRAIN", "true", ".5", "2f"]),
    st.text(
        st.characters(blacklist_characters="\n\r\\\"'", blacklist_categories=("Cs",)), max_size=8
    ).map(lambda s: f'"{s}"'),
    st.sampled_from(["'sq'", '"es\\"c"', '"a" "b"', "'\\n\\t'"]),
)
trivia = st.lists(
    st.sampled_from([" ", "\t", "\n", "\r\n", "  ", "# c\n", "#x\r\n", ""]), max_size=3
).map("".join)


@st.composite
def documents(draw, depth=0):
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(trivia))
        name = draw(names)
        if depth < 3 and draw(st.booleans()):
            colon = draw(st.sampled_from(["", ":", ": "]))
            open_, close = draw(st.sampled_from([("{", "}"), ("<", ">")]))
            body = draw(documents(depth=depth + 1))
            parts.append(f"{name}{colon} {open_}{body}{draw(trivia)}{close}")
        elif draw(st.booleans()):
            parts.append(f"{name}: {draw(scalars)}")
        else:
            items = draw(st.lists(scalars, max_size=3))
            parts.append(f"{name}: [{', '.join(items)}]")
            parts.append(draw(st.sampled_from(["", ",", ";", " ", " # tail\n"])) + draw(trivia))
    return " ".join(parts) if parts else draw(trivia)


@settings(max_examples=300, deadline=None)
@given(documents())
def test_print_of_parse_is_the_input_for_generated_documents(text):
    assert dump(parse(text)) == text


MUTATIONS = [
    "{",
    "}",
    ":",
    "[",
    "]",
    "'",
    '"',
    "#",
    "\n",
    "-",
    ",",
    ";",
    "<",
    ">",
    "@",
    "x",
    "1",
    "\\",
    " ",
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FILES or [None]), st.randoms(use_true_random=False))
def test_mutated_corpus_files_raise_only_parse_errors(path, rnd):
    if path is None:
        pytest.skip(MISSING)
    text = read(path)
    chars = list(text)
    for _ in range(rnd.randint(1, 6)):
        pos = rnd.randrange(len(chars) + 1)
        op = rnd.random()
        if op < 0.4 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(pos, rnd.choice(MUTATIONS))
        elif chars:
            chars[min(pos, len(chars) - 1)] = rnd.choice(MUTATIONS)
    mutated = "".join(chars)
    try:
        doc = parse(mutated, str(path))
    except ParseError as e:
        assert e.line >= 1 and e.col >= 1
        return
    assert dump(doc) == mutated


@pytest.mark.parametrize(
    "layer, expected",
    [
        (  # the block added on a line of its own, indented as its siblings
            'layer {\n  name: "bn"\n  top: "x"\n}\n',
            'layer {\n  name: "bn"\n  top: "x"\n  batch_norm_param { eps: 1e-5 }\n}\n',
        ),
        (  # the field added under the block's last field
            'layer {\n  name: "bn"\n  batch_norm_param {\n    moving_average_fraction: 0.9\n  }\n}\n',
            'layer {\n  name: "bn"\n  batch_norm_param {\n    moving_average_fraction: 0.9\n'
            "    eps: 1e-5\n  }\n}\n",
        ),
        (  # the value replaced, the rest of the line kept
            'layer {\n  name: "bn"\n  batch_norm_param { eps: 0  # too small\n  }\n}\n',
            'layer {\n  name: "bn"\n  batch_norm_param { eps: 1e-5  # too small\n  }\n}\n',
        ),
        (  # a net written on one line stays on one line, spaced as it was
            'layer { name: "bn" batch_norm_param {use_global_stats: true} }\n',
            'layer { name: "bn" batch_norm_param {use_global_stats: true eps: 1e-5} }\n',
        ),
    ],
)
def test_set_param_writes_the_field_where_a_person_would(layer, expected):
    net = Net.parse(layer, "net.prototxt")
    set_param(net.layers[0].node, "batch_norm_param", "eps", "1e-5")
    assert dump(net.doc) == expected
    assert Net.parse(dump(net.doc), "net.prototxt").layers[0].node.find("batch_norm_param")
