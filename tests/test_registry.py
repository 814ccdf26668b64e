"""The parameter registry: completeness, provenance of every value, and parse errors."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from ketasim.params import RegistryError, load_registry, parse_registry
from ketasim.params.registry import Parameter
from ketasim.signaling import spec

SEED_FACTS = Path("/work/shared/design/SEED-FACTS.md")
SPECIES = ("mouse", "rat", "human")
FACT_ID = re.compile(r"\bF-[A-Z]+-\d+\b")
YEAR = re.compile(r"\b(19|20)\d\d\b")

REGISTRY = load_registry()
NAMES = [p.name for p in REGISTRY]

# Entries whose source is neither a dated citation, nor "fitted to F-...", nor "assumed ...",
# the three kinds the registry's docstring allows (ketasim/params/registry.py:10).
BAD_SOURCES: set[str] = set()  # none left; add a name here only with a reason
BAD_SOURCE_REASON = (
    "BUG ketasim/params/parameters.yaml: source is not a dated citation, 'fitted to F-...' "
    "or 'assumed ...' (e.g. 'PubChem CID 3821', 'fitted together with v1 (same sources)', "
    "'review values (secondary)', 'fitted to the steep dose-response F-K-7')")


def source_params():
    """Registry names for parametrization; known non-conforming sources are strict xfails.

    Returns
    -------
    list
        ``pytest.param`` per registry entry.
    """
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=BAD_SOURCE_REASON))
            if n in BAD_SOURCES else n for n in NAMES]


def entry(**fields) -> str:
    """One registry entry as a YAML flow mapping, from a valid base with ``fields`` changed.

    Parameters
    ----------
    **fields
        Field values to set; a value of None removes the field.

    Returns
    -------
    str
        A one-entry YAML list.
    """
    base = {"name": "a.b", "value": "1.0", "unit": "h", "range": "[0, 2]",
            "source": '"assumed: test"', "description": "d"}
    base.update(fields)
    body = ", ".join(f"{k}: {v}" for k, v in base.items() if v is not None)
    return f"- {{{body}}}\n"


# ------------------------------------------------------------------ the real registry
def test_registry_is_not_trivially_small():
    assert len(REGISTRY) > 100
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_is_complete(name):
    p = REGISTRY[name]
    assert isinstance(p, Parameter)
    assert isinstance(p.unit, str) and p.unit.strip()
    assert isinstance(p.source, str) and p.source.strip()
    assert isinstance(p.description, str) and p.description.strip()
    assert p.low <= p.value <= p.high
    assert p.bsv_cv >= 0


@pytest.mark.parametrize("name", source_params())
def test_source_is_a_citation_a_fit_or_an_assumption(name):
    src = REGISTRY[name].source
    assert YEAR.search(src) or src.startswith(("fitted to F-", "assumed")), src


def test_known_bad_sources_still_exist():
    """Keep BAD_SOURCES honest: a renamed or removed entry must be taken off the list."""
    assert BAD_SOURCES <= set(NAMES)


def _fact_ids() -> set[str]:
    try:
        text = SEED_FACTS.read_text()
    except OSError:
        pytest.skip(f"{SEED_FACTS} is not readable here")
    ids = set(re.findall(r"(?m)^\s*-\s*(F-[A-Z]+-\d+)\b", text))
    assert ids, "no fact IDs found in SEED-FACTS.md"
    return ids


def test_fitted_sources_cite_existing_fact_ids():
    facts = _fact_ids()
    fitted = [p for p in REGISTRY if p.source.startswith("fitted to F-")]
    assert fitted
    for p in fitted:
        cited = FACT_ID.findall(p.source)
        assert cited, p.name
        assert set(cited) <= facts, (p.name, sorted(set(cited) - facts))


def test_every_fact_id_mentioned_in_a_source_exists():
    facts = _fact_ids()
    unknown = {(p.name, f) for p in REGISTRY for f in FACT_ID.findall(p.source) if f not in facts}
    assert not unknown


@pytest.mark.parametrize("species", SPECIES)
def test_every_model_parameter_resolves(species):
    assert len(spec.PARAMS) > 0
    missing = [p.registry.format(species=species) for p in spec.PARAMS
               if p.registry and p.registry.format(species=species) not in REGISTRY]
    assert not missing


def test_unknown_parameter_is_a_clear_key_error():
    with pytest.raises(KeyError, match="no.such.parameter"):
        REGISTRY["no.such.parameter"]


# ------------------------------------------------------------------ parse_registry
def test_parse_registry_accepts_a_valid_entry():
    reg = parse_registry(entry(bsv_cv="0.2") + entry(name="c.d", value="2", range="[2, 2]"))
    assert [p.name for p in reg] == ["a.b", "c.d"]
    p = reg["a.b"]
    assert (p.value, p.unit, p.low, p.high, p.source, p.description, p.bsv_cv) == \
        (1.0, "h", 0.0, 2.0, "assumed: test", "d", 0.2)
    assert reg["c.d"].bsv_cv == 0.0


@pytest.mark.parametrize("text,message", [
    (entry(source=None), "missing source"),
    (entry(source='""'), "missing source"),
    (entry(unit=None), "missing unit"),
    (entry(description=None), "missing description"),
    (entry(value="3"), "outside its range"),
    (entry(value="-0.5"), "outside its range"),
    (entry(colour="red"), "unknown fields"),
    (entry(bsv_cv="-0.1"), "bsv_cv"),
    (entry(value="0.5", bsv_logit_sd="-0.1"), "bsv_logit_sd must be >= 0"),
    (entry(value="0.5", bsv_logit_sd="0.5", bsv_cv="0.2"), "without a bsv_cv"),
    (entry(value="1.5", bsv_logit_sd="0.5"), "strictly between 0 and 1"),
    (entry(range="[0, 1, 2]"), "range"),
    (entry() + entry(value="2"), "defined twice"),
    ("{name: a}", "list"),
    ("- 3\n", "mapping"),
], ids=["missing-source", "empty-source", "missing-unit", "missing-description",
        "above-range", "below-range", "unknown-field", "negative-bsv-cv",
        "negative-logit-sd", "logit-and-cv", "logit-not-a-fraction", "bad-range",
        "duplicate-name", "not-a-list", "not-a-mapping"])
def test_parse_registry_rejects(text, message):
    with pytest.raises(RegistryError, match=message):
        parse_registry(text)


def test_bsv_on_a_parameter_not_read_per_subject_is_an_error():
    """Between-subject variability applies wherever a parameter with bsv_cv is read; a
    bsv_cv where it cannot apply (the circuit reads its parameters once per run) is one
    clear error naming the parameter, not a silently unused draw."""
    from ketasim.experiment.cohort import sample_cohort

    text = (resources.files("ketasim.params") / "parameters.yaml").read_text()
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("- {name: circuit.j_ee,"))
    lines[k] = lines[k].replace("- {name: circuit.j_ee,", "- {name: circuit.j_ee, bsv_cv: 0.2,")
    reg = parse_registry("\n".join(lines))
    with pytest.raises(RegistryError, match=r"bsv_cv on circuit\.j_ee"):
        sample_cohort(reg, "mouse", "a", 3, 1)
    ok = sample_cohort(REGISTRY, "mouse", "a", 3, 1)
    cl = ok.get("pk.mouse.ketamine.cl")
    assert len(set(cl)) == 3  # the ODE parameters with bsv_cv vary per subject


# ------------------------------------------------------------------ correlated BSV
def test_correlated_bsv_is_sampled_with_its_correlation():
    """bsv_corr (issue 14: published covariances of population PK models): the log
    deviations of the two parameters correlate as declared, each keeps its CV, and the
    registry's own pair (Fanta 2015: S-ketamine CL and V1, 0.49) is sampled so."""
    import numpy as np

    from ketasim.experiment.cohort import sample_cohort

    c = sample_cohort(REGISTRY, "human", "a", 4000, 7)
    x = np.log(c.get("pk.human.ketamine.cl"))
    y = np.log(c.get("pk.human.ketamine.v1"))
    assert abs(np.corrcoef(x, y)[0, 1] - 0.49) < 0.05
    assert abs(x.std() - REGISTRY["pk.human.ketamine.cl"].omega) < 0.01
    assert abs(y.std() - REGISTRY["pk.human.ketamine.v1"].omega) < 0.015
    # uncorrelated parameters keep their own draws: the same as without any correlation
    plain = parse_registry(
        (resources.files("ketasim.params") / "parameters.yaml").read_text()
        .replace("   bsv_corr: {pk.human.ketamine.v1: 0.49},\n", ""))
    d = sample_cohort(plain, "human", "a", 50, 7)
    e = sample_cohort(REGISTRY, "human", "a", 50, 7)
    np.testing.assert_array_equal(d.get("species.human.body_weight"),
                                  e.get("species.human.body_weight"))
    np.testing.assert_array_equal(d.get("pk.human.ketamine.cl"),
                                  e.get("pk.human.ketamine.cl"))  # the first of the pair
    assert not np.array_equal(d.get("pk.human.ketamine.v1"), e.get("pk.human.ketamine.v1"))


@pytest.mark.parametrize("text,message", [
    (entry(bsv_cv="0.2", bsv_corr="{z.z: 0.5}"), "not a parameter"),
    (entry(bsv_cv="0.2", bsv_corr="{c.d: 0.5}") + entry(name="c.d"), "both with a bsv_cv"),
    (entry(bsv_cv="0.2", bsv_corr="{c.d: 1.5}") + entry(name="c.d", bsv_cv="0.2"),
     r"correlations in \(-1, 1\)"),
    (entry(bsv_cv="0.2", bsv_corr="{c.d: 0.9, e.f: 0.9}")
     + entry(name="c.d", bsv_cv="0.2", bsv_corr="{e.f: -0.9}")
     + entry(name="e.f", bsv_cv="0.2"), "positive definite"),
], ids=["unknown", "no-cv", "out-of-range", "not-positive-definite"])
def test_bad_correlations_are_one_clear_error(text, message):
    with pytest.raises(RegistryError, match=message):
        parse_registry(text)


# ------------------------------------------------------------------ logit-normal BSV
def test_logit_normal_bsv_keeps_a_fraction_in_its_bounds():
    """bsv_logit_sd (Perez-Ruixo et al. 2021 publish the nasally absorbed fraction's
    variability on the logit scale, SD 0.708): median = registry value, logit SD as
    declared, every subject's fraction strictly between 0 and 1."""
    import numpy as np

    from ketasim.experiment.cohort import sample_cohort

    p = REGISTRY["pk.human.ketamine.nasal_f"]
    f = sample_cohort(REGISTRY, "human", "a", 4000, 3).get(p.name)
    assert np.all((f > 0) & (f < 1))
    logit = np.log(f / (1 - f))
    assert abs(np.median(f) - p.value) < 0.02
    assert abs(logit.std() - p.bsv_logit_sd) < 0.03


def test_appending_a_varying_parameter_keeps_earlier_draws():
    """Subjects draw their deviations in file order: a parameter given variability at the
    end of the file leaves every earlier parameter's values unchanged."""
    import numpy as np

    from ketasim.experiment.cohort import sample_cohort

    text = (resources.files("ketasim.params") / "parameters.yaml").read_text()
    cut = text.index("- {name: pk.human.ketamine.qh,")
    head = parse_registry(text[:cut])
    full = REGISTRY
    a = sample_cohort(head, "human", "a", 20, 11)
    b = sample_cohort(full, "human", "a", 20, 11)
    for name in a.names:
        np.testing.assert_array_equal(a.get(name), b.get(name), err_msg=name)


def test_cohort_draws_are_each_subjects_own_stream():
    """sample_cohort draws a chunk's normals at once (compiled); each subject's are its
    own PURPOSE_PARAMETERS stream (subject_rng), whatever the other subjects."""
    import numpy as np

    from ketasim.core.streams import PURPOSE_PARAMETERS, subject_rng
    from ketasim.experiment.cohort import sample_cohort

    params = list(REGISTRY)
    varying = [p for p in params if p.omega > 0 or p.bsv_logit_sd > 0]
    p = next(q for q in varying if q.omega > 0 and q.name != "pk.human.ketamine.v1")
    col = varying.index(p)
    subjects = np.array([0, 5, 2**31 + 3])
    c = sample_cohort(REGISTRY, "mouse", "arm x", 3, 99, subjects=subjects)
    for s, got in zip(subjects, c.get(p.name), strict=True):
        z = subject_rng(99, "arm x", int(s), PURPOSE_PARAMETERS).standard_normal(len(varying))
        assert got == p.value * np.exp(p.omega * z[col])
