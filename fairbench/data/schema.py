"""The two censuses fairbench reads, and which columns each offers.

* ``acs``: the ACSIncome task (folktables): ten feature columns (:data:`~fairbench.data.coding.FEATURES`,
  AGEP and WKHP numeric, the rest categorical official codes) and, beside them, ``ST``: the
  state's FIPS code, which every ACS frame carries so that several states can be pooled and
  the state can be a protected attribute (it is never a feature).
* ``dutch``: the Dutch Virtual Census 2001 as the fairness literature uses it (Le Quy et al.,
  "A survey on datasets for fairness-aware machine learning", WIREs DMKD 2022): eleven
  categorical columns coded as integers and the label ``occupation``, whose level ``2_1``
  (high-level occupations) is the positive class.

Protected attributes are columns of the census; a protected column is never a feature.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairbench.data.coding import FEATURES, NUMERIC_FEATURES

ACS, DUTCH = "acs", "dutch"
CENSUSES = (ACS, DUTCH)
STATE_COLUMN = "ST"

DUTCH_FEATURES: tuple[str, ...] = (
    "sex", "age", "household_position", "household_size", "prev_residence_place",
    "citizenship", "country_birth", "edu_level", "economic_status", "cur_eco_activity",
    "Marital_status",
)
DUTCH_LABEL = "occupation"
DUTCH_POSITIVE = "2_1"
DUTCH_FILE = "dutch_census_2001.arff"


@dataclass(frozen=True)
class Schema:
    """A census's feature columns (in order), its numeric ones, and the protected-only ones."""

    census: str
    features: tuple[str, ...]
    numeric: tuple[str, ...]
    protected_only: tuple[str, ...]

    @property
    def protectable(self) -> tuple[str, ...]:
        """Every column a protected attribute may be."""
        return (*self.features, *self.protected_only)


SCHEMAS = {
    ACS: Schema(ACS, FEATURES, NUMERIC_FEATURES, (STATE_COLUMN,)),
    DUTCH: Schema(DUTCH, DUTCH_FEATURES, (), ()),
}
