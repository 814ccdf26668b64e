"""The validated domain: how far the replicas of ``ketasim validate`` take each stressor
and each compound, per species, so that a run beyond them says so.

Two extrapolations are known to go wrong (the model-plausibility audit of 2026-12-06):

- a stress course much longer than any replica's: the spine engine's stress-driven
  elimination has no floor, so density keeps falling while the stress lasts (the model's
  mouse under CORT, measured 2026-12-06: -24% at 10 days, -53% at 30 days, -79% at 120
  days), a decline no target checks past the replicas' 10 days;
- many more doses of a compound than any replica gives: repeated doses hold the
  formation drive raised and nothing limits spine density homeostatically (the model's
  mouse given ketamine 10 mg/kg ip daily, measured 2026-12-06: +44% at 10 days, 2.5 x
  baseline at 59 days).

The extents are read from the built-in replicas themselves and kept in
``extent.json`` beside them (reading the replicas takes most of a second, too long for
every run): ``python -m ketasim.validation.domain --write`` regenerates it, and
``tests/test_validation.py`` checks that it matches the replicas, so it follows the
validation suite as it grows; nothing here is a number to maintain by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ketasim.pk.compounds import COMPOUNDS
from ketasim.scenario import load_scenario
from ketasim.signaling.protocol import event_where
from ketasim.validation.targets import replica_paths

#: a run is warned of when it goes this many times beyond the replicas' extent
BEYOND_FACTOR = 1.5
EXTENT_FILE = Path(__file__).resolve().parent / "extent.json"


@dataclass
class Extent:
    """The most any replica arm gives, per species: hours of each stressor (summed over
    the arm's stress events) and doses of each compound that acts (saline and inert compounds, such as the
    active placebo midazolam, not counted)."""
    stress_h: dict[tuple[str, str], float] = field(default_factory=dict)
    doses: dict[tuple[str, str], int] = field(default_factory=dict)

    def to_json(self) -> str:
        def rows(d):  # one [species, name, extent] per line
            return ",\n".join(f"  {json.dumps([sp, k, v])}" for (sp, k), v in sorted(d.items()))
        return (f'{{"stress_h": [\n{rows(self.stress_h)}\n ],\n'
                f' "doses": [\n{rows(self.doses)}\n ]}}\n')

    @staticmethod
    def from_json(text: str) -> Extent:
        raw = json.loads(text)
        return Extent({(sp, k): float(v) for sp, k, v in raw["stress_h"]},
                      {(sp, k): int(v) for sp, k, v in raw["doses"]})


def _arm_stress_h(arm) -> dict[str, float]:
    out: dict[str, float] = {}
    for ev in arm.protocol:
        name = getattr(ev, "stress", None)
        if name:
            out[name] = out.get(name, 0.0) + float(ev.duration)
    return out


def _arm_doses(arm) -> dict[str, list]:
    out: dict[str, list] = {}
    taper = getattr(arm, "taper", None)  # a taper's every possible dose counts
    for ev in [*arm.protocol, *([] if taper is None else taper.doses())]:
        # the protocol is stored with repeated doses expanded
        drug = getattr(ev, "drug", None)
        if (drug and getattr(ev, "dose", None) is not None
                and getattr(COMPOUNDS.get(drug), "kind", "inert") != "inert"):
            out.setdefault(drug, []).append(ev)
    return out


@lru_cache(maxsize=1)
def validated_extent() -> Extent:
    """The extent of the built-in replicas, from ``extent.json`` (read once)."""
    return Extent.from_json(EXTENT_FILE.read_text())


def replica_extent() -> Extent:
    """The extent computed from the built-in replica files themselves."""
    ext = Extent()
    for path in replica_paths().values():
        sc = load_scenario(path)
        for arm in sc.arms:
            for name, h in _arm_stress_h(arm).items():
                key = (sc.species, name)
                ext.stress_h[key] = max(ext.stress_h.get(key, 0.0), h)
            for drug, evs in _arm_doses(arm).items():
                key = (sc.species, drug)
                ext.doses[key] = max(ext.doses.get(key, 0), len(evs))
    return ext


def domain_warnings(scenario, extent: Extent | None = None) -> list[str]:
    """One line per arm that goes more than :data:`BEYOND_FACTOR` times beyond the
    replicas: a longer stress course, or more doses of a compound, than any replica of
    the species gives (a species or compound no replica covers is not judged here)."""
    ext = validated_extent() if extent is None else extent
    lines = []
    for i, arm in enumerate(scenario.arms):
        for name, h in _arm_stress_h(arm).items():
            most = ext.stress_h.get((scenario.species, name))
            if most is not None and h > BEYOND_FACTOR * most:
                lines.append(
                    f"arms[{i}] ({arm.name!r}): {h / 24:g} days of {name}, beyond the "
                    f"validation replicas (at most {most / 24:g} days in the "
                    f"{scenario.species}); the model's spine loss under stress has no "
                    "floor, so spine density keeps falling as long as the stress lasts")
        for drug, evs in _arm_doses(arm).items():
            most = ext.doses.get((scenario.species, drug))
            if most is not None and len(evs) > BEYOND_FACTOR * most:
                lines.append(
                    f"{event_where(f'arms[{i}]', evs[0])}: {len(evs)} doses of {drug} "
                    f"(arm {arm.name!r}), beyond the validation replicas (at most {most} "
                    f"in the {scenario.species}); with many doses the model keeps the "
                    "formation drive raised and nothing homeostatic limits the synaptic "
                    "gain it builds (spine density; the patients' synaptic state)")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Print the replicas' extent as JSON, or with ``--write`` store it in its file;
    anything else is a usage error."""
    parser = argparse.ArgumentParser(prog="python -m ketasim.validation.domain",
                                     description="the extent of the replicas (extent.json)")
    parser.add_argument("--write", action="store_true",
                        help=f"write {EXTENT_FILE.name} instead of printing it")
    if parser.parse_args(argv).write:
        EXTENT_FILE.write_text(replica_extent().to_json())
    else:
        sys.stdout.write(replica_extent().to_json())


if __name__ == "__main__":
    main()
