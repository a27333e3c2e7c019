"""The q and scopeQ languages: parsing, precedence, errors, and the reference evaluator."""

from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.ngsild.errors import BadRequestData, InvalidRequest
from burgo.ngsild.model import Attribute, AttrKind, Entity
from burgo.ngsild.qlang import evaluate, evaluate_scope, parse_q, parse_scope_q
from burgo.ngsild.qmatch import Absent, And, Literal, LitKind, Op, Or, Path, Range, Term
from tests.q_strategies import q_texts, scope_texts

NS = "https://example.org/"


def expand(name: str) -> str:
    return NS + name


def q(text: str) -> Any:
    return parse_q(text, expand)


def prop(value: Any, **extra: Any) -> tuple[Attribute, ...]:
    return (Attribute(AttrKind.PROPERTY, value, **extra),)


def thing(**attrs: tuple[Attribute, ...]) -> Entity:
    return Entity(
        "urn:ngsi-ld:Thing:1",
        (NS + "Thing",),
        MappingProxyType({NS + name: inst for name, inst in attrs.items()}),
        scope=("/Madrid/Gardens", "/Fundao"),
        created_at="2024-01-01T00:00:00.000Z",
        modified_at="2024-06-01T00:00:00.000Z",
    )


def matches(text: str, entity: Entity) -> bool:
    return evaluate(q(text), entity)


# -- parsing ------------------------------------------------------------------------------------


def test_every_comparison_operator_parses() -> None:
    for op in Op:
        value = '"^a"' if op in (Op.MATCH, Op.NO_MATCH) else "5"
        term = q(f"speed{op.value}{value}")
        assert isinstance(term, Term)
        assert term.op == op


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = (Term(Path(NS + n)) for n in "abc")
    assert q("a;b|c") == Or((And((a, b)), c))
    assert q("a|b;c") == Or((a, And((b, c))))
    assert q("(a|b);c") == And((Or((a, b)), c))
    assert q("((a|b);(c))") == And((Or((a, b)), c))


def test_values_lists_and_ranges() -> None:
    number = LitKind.NUMBER
    assert q("a==1,2.5,-3e2").values == (
        Literal(number, 1),
        Literal(number, 2.5),
        Literal(number, -300.0),
    )
    assert [v.value for v in q('a=="x","y"').values] == ["x", "y"]
    assert q("a==1..5").values == (Range(Literal(number, 1), Literal(number, 5)),)
    (dates,) = q("a==2024-01-01..2024-02-01").values
    assert (dates.low.kind, dates.high.value) == (LitKind.DATE, "2024-02-01")
    (strings,) = q('a=="a".."c"').values
    assert (strings.low.value, strings.high.value) == ("a", "c")


def test_literal_kinds() -> None:
    def lit(text: str) -> Literal:
        (value,) = q("a==" + text).values
        assert isinstance(value, Literal)
        return value

    assert lit("true") == Literal(LitKind.BOOLEAN, True)
    assert lit('"true"').kind == LitKind.STRING
    assert lit('"a\\"b\\u00e9"').value == 'a"bé'
    assert lit("2024-01-01T01:00:00+01:00") == Literal(
        LitKind.DATETIME, "2024-01-01T00:00:00.000000Z"
    )
    assert lit("12:30:00Z") == Literal(LitKind.TIME, "12:30:00.000000")
    assert lit("urn:ngsi-ld:Car:1").value == "urn:ngsi-ld:Car:1"


def test_paths_into_sub_attributes_members_and_compound_values() -> None:
    assert q("a.b.c").path == Path(NS + "a", (NS + "b", NS + "c"))
    assert q("a.observedAt>=2024-01-01T00:00:00Z").path == Path(NS + "a", member="observedAt")
    assert q("a.b.unitCode").path == Path(NS + "a", (NS + "b",), member="unitCode")
    assert q("a[b.c]").path == Path(NS + "a", trail=("b", "c"))
    assert q("a[b][c]").path == Path(NS + "a", trail=("b", "c"))
    assert q("a.b[c]").path == Path(NS + "a", (NS + "b",), trail=("c",))
    assert q("createdAt>2024-01-01T00:00:00Z").path == Path(None, member="createdAt")
    assert q("!a") == Absent(Path(NS + "a"))


def test_names_are_expanded_through_the_context() -> None:
    seen: list[str] = []

    def record(name: str) -> str:
        seen.append(name)
        return "urn:x:" + name

    parse_q("brandName==1;sensor.rawdata[airquality.particulate]==40", record)
    assert sorted(seen) == ["brandName", "rawdata", "sensor"]


def test_regex_may_use_groups_classes_and_quotes() -> None:
    assert q("a~=(x|y)").pattern == "(x|y)"
    assert q('a~="x|y;z"').pattern == "x|y;z"
    assert q("a~=[;|]b").pattern == "[;|]b"
    assert q("a~=x|b") == Or((Term(Path(NS + "a"), Op.MATCH, pattern="x"), Term(Path(NS + "b"))))


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 1, "empty"),
        ("a>true", 3, "needs a number"),
        ("a>urn:x:1", 3, "needs a number"),
        ("a==fo o", 4, "double quotes"),
        ("a==x/y", 4, "double quotes"),
        ("a==", 4, "expected a value"),
        ("(a", 3, "')'"),
        ("a)", 2, "unexpected ')'"),
        ("a;", 3, "attribute name"),
        ("a==1..x", 4, "range"),
        ('a==1.."x"', 7, "quote"),
        ('a=="x"..2', 4, "range"),
        ('a=="x', 4, "unterminated"),
        ('a=="\\x"', 4, "invalid string"),
        ("a~=(", 4, "regular expression"),
        ("a~=", 4, "missing regular expression"),
        ("!a==1", 5, "negates existence"),
        ("a.", 3, "attribute name"),
        ("observedAt>1", 1, "member of an attribute"),
        ("a.observedAt.b", 3, "must end"),
        ("a{b}==1", 2, "linked-entity"),
        ("a==2024-13-01", 4, "Date"),
        ("a==2024-01-01T00:00:00", 4, "DateTime"),
        ("a==1e999", 4, "out of range"),
        ("a b", 2, "unexpected ' '"),
        ("a[b", 4, "']'"),
        ("a[*.b]", 7, "stands alone"),
        ("1a==1", 1, "attribute name"),
        ("(" * 20 + "a" + ")" * 20, 17, "nested"),
        (";".join(["a"] * 65), 129, "terms"),
    ],
)
def test_errors_name_the_position(text: str, position: int, words: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        q(text)
    assert f"at character {position}:" in caught.value.detail
    assert words in caught.value.detail


def test_an_expansion_that_is_not_an_iri_is_refused() -> None:
    with pytest.raises(BadRequestData, match="not an IRI"):
        parse_q("a==1", lambda name: 'urn:"quoted"')


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet='ab.[]()!=<>~;|,"*0123456789:-TZ\\', max_size=30))
def test_garbage_only_ever_raises_clean_problems(text: str) -> None:
    with contextlib.suppress(BadRequestData, InvalidRequest):
        q(text)
    with contextlib.suppress(BadRequestData, InvalidRequest):
        parse_scope_q(text)


@settings(max_examples=200, deadline=None)
@given(q_texts(), scope_texts())
def test_generated_expressions_parse(q_text: str, scope_text: str) -> None:
    q(q_text)
    parse_scope_q(scope_text)


# -- evaluation ---------------------------------------------------------------------------------


def test_comparisons_on_numbers_strings_and_booleans() -> None:
    room = thing(temp=prop(21.5), name=prop("Sala"), open=prop(True))
    assert matches("temp>20;temp<22;temp>=21.5;temp<=21.5;temp==21.5", room)
    assert not matches("temp>21.5", room)
    assert matches('name=="Sala";name!="Aula";name>"A";name~=^S', room)
    assert matches("open==true", room) and not matches("open==false", room)
    assert matches("temp==1,21.5,30", room) and matches("temp==20..22", room)
    assert matches("temp!=22..30", room) and not matches("temp!=20..22", room)


def test_different_data_types_do_not_compare_but_are_unequal() -> None:
    room = thing(temp=prop("21"))
    assert not matches("temp==21", room)
    assert not matches("temp>1", room)
    assert matches("temp!=21", room)
    assert not matches("temp~=2", thing(temp=prop(21)))
    assert not matches('open=="1"', thing(open=prop(True)))


def test_missing_attributes_match_no_comparison_not_even_unequal() -> None:
    empty = thing()
    for text in ("temp==1", "temp!=1", "temp>1", "temp~=x", "temp!~=x", "temp"):
        assert not matches(text, empty), text
    assert matches("!temp", empty)
    assert not matches("!temp", thing(temp=prop(1)))


def test_arrays_match_any_element_and_unequal_means_none() -> None:
    car = thing(colors=prop(["blue", "red", "green"]))
    assert matches('colors=="red"', car)
    assert matches('colors=="black","red"', car)
    assert not matches('colors!="red"', car)
    assert matches('colors!="black"', car)
    assert matches("colors~=^gr", car)
    assert not matches("colors!~=e", car)


def test_any_instance_of_a_multi_instance_attribute_matches() -> None:
    two = (
        Attribute(AttrKind.PROPERTY, 10),
        Attribute(AttrKind.PROPERTY, 30, dataset_id="urn:ngsi-ld:Sensor:b"),
    )
    room = thing(temp=two)
    assert matches("temp>20", room) and matches("temp<20", room)
    assert matches('temp.datasetId=="urn:ngsi-ld:Sensor:b"', room)


def test_relationships_compare_their_objects_with_equality_only() -> None:
    car = thing(
        isParked=(Attribute(AttrKind.RELATIONSHIP, "urn:ngsi-ld:OffStreetParking:Downtown1"),)
    )
    assert matches('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', car)
    assert matches("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", car)
    assert matches("isParked!=urn:ngsi-ld:OffStreetParking:Other", car)
    assert not matches('isParked>"urn:a"', car)
    assert not matches("isParked~=Downtown", car)
    many = thing(
        owners=(
            Attribute(AttrKind.LIST_RELATIONSHIP, [{"object": "urn:a:1"}, {"object": "urn:a:2"}]),
        )
    )
    assert matches("owners==urn:a:2", many) and not matches("owners!=urn:a:2", many)


def test_language_properties_compare_any_language_or_the_chosen_one() -> None:
    color = (Attribute(AttrKind.LANGUAGE_PROPERTY, {"fr": "rouge", "en": ["red", "cat"]}),)
    cat = thing(color=color)
    assert matches('color=="rouge"', cat) and matches('color[*]=="red"', cat)
    assert matches('color[en]=="red"', cat) and not matches('color[fr]=="red"', cat)
    assert matches('color[fr]!="red"', cat) and not matches('color!="red"', cat)


def test_vocab_properties_compare_expanded_terms() -> None:
    person = thing(gender=(Attribute(AttrKind.VOCAB_PROPERTY, NS + "Male"),))
    assert matches('gender=="Male"', person) and matches("gender==Male", person)
    assert not matches("gender==Female", person)
    assert matches(f'gender=="{NS}Male"', person)


def test_datetimes_dates_and_times_compare_in_time_order() -> None:
    obs = thing(
        temp=prop(20, observed_at="2024-05-01T10:00:00.000Z"),
        when=prop({"@type": "DateTime", "@value": "2024-05-01T12:00:00+02:00"}),
        day=prop("2024-05-01"),
        at=prop("08:00:00Z"),
    )
    assert matches("temp.observedAt>=2024-05-01T09:59:59.999Z", obs)
    assert matches("when==2024-05-01T10:00:00Z", obs)
    assert matches("temp.observedAt==2024-05-01T00:00:00Z..2024-05-02T00:00:00Z", obs)
    assert matches("day>2024-04-30;day<2024-05-02", obs)
    assert matches("at<09:00:00Z", obs) and not matches("at>09:00:00Z", obs)
    assert matches("createdAt<2024-02-01T00:00:00Z;modifiedAt>2024-02-01T00:00:00Z", obs)


def test_sub_attributes_and_compound_values() -> None:
    measured = Attribute(
        AttrKind.PROPERTY,
        40,
        sub=MappingProxyType(
            {NS + "rawdata": Attribute(AttrKind.PROPERTY, {"airquality": {"particulate": 40}})}
        ),
    )
    station = thing(sensor=(measured,), address=prop({"city": "Berlin", "street": "Ulrich"}))
    assert matches('address[city]=="Berlin"', station)
    assert matches("sensor.rawdata[airquality.particulate]==40", station)
    assert matches("sensor.rawdata[airquality][particulate]", station)
    assert not matches("sensor.rawdata[airquality.pm10]", station)
    assert matches("!sensor.other", station) and matches("sensor.rawdata", station)


def test_scope_queries() -> None:
    scopes = ("/Madrid/Gardens/ParqueNorte", "/Fundao")
    assert evaluate_scope(parse_scope_q("/Fundao"), scopes)
    assert not evaluate_scope(parse_scope_q("/Madrid"), scopes)
    assert evaluate_scope(parse_scope_q("/Madrid/#"), scopes)
    assert not evaluate_scope(parse_scope_q("/Mad/#"), scopes)
    assert evaluate_scope(parse_scope_q("/#"), scopes) and not evaluate_scope(
        parse_scope_q("/#"), ()
    )
    assert evaluate_scope(parse_scope_q("/X|(/Fundao;/Madrid/Gardens/#)"), scopes)
    assert not evaluate_scope(parse_scope_q("/X|/Fundao;/Y"), scopes)


@pytest.mark.parametrize("text", ["", "Madrid", "/a/", "/a//b", "/a/#/b", "/a-b", "(/a", "/a;"])
def test_scope_errors(text: str) -> None:
    with pytest.raises(BadRequestData, match="Invalid scopeQ at character"):
        parse_scope_q(text)
