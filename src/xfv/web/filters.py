"""The explorer's state: filters, sorting and paging, parsed from and written back to URLs.

One pydantic model serves the explorer page, the ``/api/pairs`` endpoint and the viewer's
previous/next links, so a shared URL means the same table everywhere. Empty form fields (a GET
form sends ``correct=`` for "any") read as "no filter". :meth:`ExplorerQuery.pair_query` turns
the URL's words (``label=same``, ``outcome=wrong``, ``order=desc``) into the store's
:class:`~xfv.store.pair_table.PairQuery`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from xfv.store.pair_table import Agreement, PairQuery, SortColumn

PAGE_SIZES = (25, 50, 100, 200)


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Blank = BeforeValidator(_blank_is_none)
Name = Annotated[str, Field(max_length=200)]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]
Fold = Annotated[int, Field(ge=0, le=99)]
Text = Annotated[str, Field(max_length=100)]
PageNumber = Annotated[int, Field(ge=1, le=1_000_000)]
PageSize = Annotated[int, Field(ge=1, le=200)]
Choice = Literal["same", "different"]
ModelList = Annotated[str, Field(max_length=1000, pattern=r"^[^,]+(,[^,]+)*$")]


class ExplorerQuery(BaseModel):
    """Filters, sort and page of the pair table; ``None`` means "any"."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dataset: Annotated[Name | None, Blank, Field(description="dataset name")] = None
    model: Annotated[Name | None, Blank, Field(description="model name (default: the first with results)")] = None
    label: Annotated[Choice | None, Blank, Field(description="ground truth")] = None
    prediction: Annotated[Choice | None, Blank, Field(description="the model's decision")] = None
    outcome: Annotated[Literal["correct", "wrong"] | None, Blank, Field(description="decision right or wrong")] = None
    fold: Annotated[Fold | None, Blank] = None
    identity: Annotated[Text | None, Blank, Field(description="part of either person's name")] = None
    cscore_min: Annotated[UnitFloat | None, Blank] = None
    cscore_max: Annotated[UnitFloat | None, Blank] = None
    quality_min: Annotated[UnitFloat | None, Blank, Field(description="lower of the two image qualities >=")] = None
    quality_max: Annotated[UnitFloat | None, Blank, Field(description="lower of the two image qualities <=")] = None
    models: Annotated[
        ModelList | None,
        Blank,
        Field(description="models compared side by side, comma-separated (default: every model with results)"),
    ] = None
    agreement: Annotated[
        Agreement | None, Blank, Field(description="the compared models' decisions: all alike, or not")
    ] = None
    sort: Annotated[SortColumn, Blank] = "position"
    sort_model: Annotated[
        Name | None, Blank, Field(description="the model whose column a result sort reads (default: model)")
    ] = None
    order: Annotated[Literal["asc", "desc"], Blank] = "asc"
    page: Annotated[PageNumber, Blank] = 1
    per_page: Annotated[PageSize, Blank] = 50

    @model_validator(mode="after")
    def _ranges_in_order(self) -> ExplorerQuery:
        for low, high in (("cscore_min", "cscore_max"), ("quality_min", "quality_max")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) is above {high} ({b})")
        return self

    def pair_query(self) -> PairQuery:
        """This state as the store's query of the pair table."""
        return PairQuery(
            dataset=self.dataset,
            model=self.model,
            fold=self.fold,
            same=None if self.label is None else self.label == "same",
            predicted_same=None if self.prediction is None else self.prediction == "same",
            correct=None if self.outcome is None else self.outcome == "correct",
            identity=self.identity,
            min_cscore=self.cscore_min,
            max_cscore=self.cscore_max,
            min_quality=self.quality_min,
            max_quality=self.quality_max,
            models=self.model_list,
            agreement=self.agreement,
            sort=self.sort,
            sort_model=self.sort_model,
            descending=self.order == "desc",
            page=self.page,
            per_page=self.per_page,
        )

    @property
    def model_list(self) -> tuple[str, ...] | None:
        """``models`` as names (None: every model with results)."""
        return tuple(name.strip() for name in self.models.split(",")) if self.models else None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ExplorerQuery:
        """The state of a URL's query parameters in one validation (the last of a repeated one
        counts; unknown ones are ignored), invalid ones answered 422 as FastAPI's own parameters are."""
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None

    @cached_property
    def _encoded(self) -> dict[str, str]:
        """The non-default fields as encoded ``key=value`` parts, in field order (computed once:
        every sort, page and viewer link of a page starts from them)."""
        return {key: _part(key, value) for key, value in self.model_dump().items() if _given(key, value)}

    @cached_property
    def query_string(self) -> str:
        """This state as a URL query string."""
        return "&".join(self._encoded.values())

    def viewer_url(self, pair_id: int, index: int) -> str:
        """The viewer of a pair opened from row ``index`` of this table (so it knows its neighbours)."""
        return f"/pairs/{pair_id}?{self.query_string}&i={index}" if self.query_string else f"/pairs/{pair_id}?i={index}"

    def url(self, path: str = "/explorer", extra: dict[str, Any] | None = None, **changes: Any) -> str:
        """``path`` with this state (after ``changes``) and the ``extra`` parameters as its query string."""
        parts = self._encoded
        if changes:
            parts = dict.fromkeys(DEFAULTS, "") | parts
            for key, value in changes.items():
                parts[key] = _part(key, value) if _given(key, value) else ""
        found = [part for part in parts.values() if part]
        found += [_part(key, value) for key, value in (extra or {}).items() if value is not None]
        return f"{path}?{'&'.join(found)}" if found else path

    def sorted_by(self, column: str, model: str | None = None, main: str | None = None) -> bool:
        """Whether the table is sorted by ``column`` (of ``model``, a result column; ``main`` is
        the table's own model)."""
        return self.sort == column and (model is None or (self.sort_model or main) == model)

    def sort_url(self, column: str, model: str | None = None, main: str | None = None) -> str:
        """The explorer URL sorted by ``column`` (of ``model``, a result column; ``main`` is the
        table's own model): ascending first, toggling when already sorted by it."""
        sort_model = None if model is None or model == main else model
        order = "desc" if self.sort == column and self.sort_model == sort_model and self.order == "asc" else "asc"
        return self.url(sort=column, sort_model=sort_model, order=order, page=1)


DEFAULTS = ExplorerQuery().model_dump()


def _given(key: str, value: Any) -> bool:
    """Whether a field's value belongs in a URL (set, and not its default)."""
    return value is not None and value != DEFAULTS[key]


def _part(key: str, value: Any) -> str:
    """One URL-encoded ``key=value`` (as :func:`urllib.parse.urlencode` writes it)."""
    return f"{quote_plus(key)}={quote_plus(str(value))}"
