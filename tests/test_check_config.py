"""The check layer's param_str: three accepted forms, and a clear error for every bad one."""

import pytest

from caffe_nantools import CheckConfigError
from caffe_nantools.checking import CheckConfig, parse_param_str


def test_empty_param_str_gives_the_defaults():
    config = parse_param_str("")
    assert config == CheckConfig()
    assert (config.check, config.on, config.every, config.max_abs) == ("both", "raise", 1, None)


def test_a_bare_word_is_the_name_as_in_the_original_answer():
    assert parse_param_str("prefix-check_loss").name == "prefix-check_loss"


def test_key_value_pairs():
    config = parse_param_str("name=fc7 blobs=fc7,fc8 check=backward on=warn max_abs=1e6 every=10")
    assert config == CheckConfig(
        name="fc7", blobs=("fc7", "fc8"), check="backward", on="warn", max_abs=1e6, every=10
    )


@pytest.mark.parametrize(
    "text",
    ["name=a;blobs=x,y;on=warn", "name=a, blobs=x,y, on=warn", "  name=a  blobs=x, y on=warn "],
)
def test_key_value_separators(text):
    assert parse_param_str(text) == CheckConfig(name="a", blobs=("x", "y"), on="warn")


def test_json_object():
    config = parse_param_str(
        '{"name": "conv1", "blobs": ["conv1"], "on": "dump", "dump_dir": "/tmp/d", "max_abs": 100, "every": "2"}'
    )
    assert config == CheckConfig(
        name="conv1", blobs=("conv1",), on="dump", dump_dir="/tmp/d", max_abs=100.0, every=2
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "nmae=x",
            "unknown key 'nmae' (allowed keys: blobs, check, dump_dir, every, max_abs, name, on, writer)",
        ),
        ('{"colour": 1}', "unknown key 'colour'"),
        (
            "check=sideways",
            "check='sideways' is not allowed (allowed values: forward, backward, both)",
        ),
        ("on=explode", "on='explode' is not allowed (allowed values: raise, warn, dump)"),
        ("every=0", "every='0' must be an integer >= 1"),
        ("every=1.5", "every='1.5' must be an integer >= 1"),
        ('{"every": true}', "every=True must be an integer >= 1"),
        ("max_abs=-1", "max_abs='-1' must be a finite number > 0"),
        ("max_abs=inf", "max_abs='inf' must be a finite number > 0"),
        ("max_abs=big", "max_abs='big' must be a finite number > 0"),
        ("name=", "name must be a non-empty string"),
        ('{"blobs": []}', "blobs must be a list of blob names"),
        ('{"blobs": [""]}', "blobs must be a non-empty string"),
        ("dump_dir=/tmp/x", "dump_dir is used only with on=dump"),
        ("name=a name=b", "key 'name' is given twice"),
        ("=x", "'=x' has no key before '='"),
        ("two words", "use key=value pairs, a JSON object, or one bare word as the name"),
        ("stray name=a", "'stray' is not a key=value pair"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "use key=value pairs"),
        ('["name"]', "use key=value pairs"),
    ],
)
def test_bad_param_str_names_the_problem(text, message):
    with pytest.raises(CheckConfigError) as info:
        parse_param_str(text)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert text_of_error.startswith(f"CheckFiniteLayer param_str {text!r}: ")
    assert "\n" not in text_of_error


def test_config_errors_are_value_errors_and_nantools_errors():
    from caffe_nantools import NanToolsError

    with pytest.raises(ValueError):
        parse_param_str("on=never")
    assert issubclass(CheckConfigError, NanToolsError)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"blobs": ' + "[" * 50000 + "]" * 50000 + "}", "JSON nested too deeply"),
        ('{"name": ' * 20000 + '"x"' + "}" * 20000, "JSON nested too deeply"),
        ("every=" + "1" * 5000, "must be an integer >= 1"),
        ("name=n every=" + "9" * 20, "must be an integer >= 1"),
        ('{"max_abs": 1' + "0" * 400 + "}", "must be a finite number > 0"),
    ],
)
def test_hostile_param_strs_are_config_errors_of_one_short_line(text, message):
    with pytest.raises(CheckConfigError) as info:
        parse_param_str(text)
    assert message in str(info.value) and len(str(info.value)) < 400 and "\n" not in str(info.value)


def test_every_up_to_the_largest_int64_is_kept():
    assert parse_param_str("every=9223372036854775807").every == 2**63 - 1
    assert parse_param_str('{"every": 12}').every == 12
