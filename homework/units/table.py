"""The unit table: every spelling we read or write, the pint expression it means, one name per unit, and pint's
conversion. Every answer in data/ is computed here, by pint (imported on first use); nothing in this package holds a
conversion factor.
"""

import functools

# The generator's table: the spellings it writes, each mapped to the pint expression it means. Its order
# and content fix data/train.json and data/valid.json byte for byte; the reader knows more (SPELLINGS).
UNITS = {
    "digital storage": {
        "bit": "bit",
        "bits": "bit",
        "B": "byte",
        "byte": "byte",
        "bytes": "byte",
        "kB": "kilobyte",
        "KB": "kilobyte",
        "M": "megabyte",
        "MB": "megabyte",
        "G": "gigabyte",
        "GB": "gigabyte",
    },
    "speed": {
        "m/s": "meter / second",
        "km/h": "kilometer / hour",
        "kmh": "kilometer / hour",
        "mi/h": "mile / hour",
        "mph": "mile / hour",
        "ft/s": "foot / second",
        "in/s": "inch / second",
    },
    "volume": {
        "mL": "milliliter",
        "milliliter": "milliliter",
        "millilitre": "milliliter",
        "cc": "cc",
        "cm^3": "centimeter ** 3",
        "cm**3": "centimeter ** 3",
        "l": "liter",
        "L": "liter",
        "liter": "liter",
        "litre": "liter",
        "liters": "liter",
        "m^3": "meter ** 3",
        "m**3": "meter ** 3",
        "mm^3": "millimeter ** 3",
        "pint": "pint",
        "pints": "pint",
        "quart": "quart",
        "quarts": "quart",
        "gallon": "gallon",
        "gallons": "gallon",
        "fluid ounce": "fluid_ounce",
        "fluid ounces": "fluid_ounce",
    },
    "mass": {
        "g": "gram",
        "gram": "gram",
        "grams": "gram",
        "kg": "kilogram",
        "kilogram": "kilogram",
        "metric ton": "metric_ton",
        "tonne": "metric_ton",
        "tonnes": "metric_ton",
        "ounce": "ounce",
        "ounces": "ounce",
        "pound": "pound",
        "pounds": "pound",
    },
    "time": {
        "s": "second",
        "sec": "second",
        "second": "second",
        "seconds": "second",
        "min": "minute",
        "minute": "minute",
        "minutes": "minute",
        "h": "hour",
        "hour": "hour",
        "hours": "hour",
        "day": "day",
        "days": "day",
        "week": "week",
        "weeks": "week",
        "month": "month",
        "months": "month",
        "year": "year",
        "years": "year",
        "decade": "10 * year",
        "decades": "10 * year",  # pint's own "decade" is logarithmic
        "century": "century",
        "centuries": "century",
    },
    "length": {
        "mm": "millimeter",
        "cm": "centimeter",
        "m": "meter",
        "meter": "meter",
        "meters": "meter",
        "km": "kilometer",
        "in": "inch",
        "inch": "inch",
        "inches": "inch",
        "ft": "foot",
        "foot": "foot",
        "feet": "foot",
        "yd": "yard",
        "yard": "yard",
        "yards": "yard",
        "mi": "mile",
        "mile": "mile",
        "miles": "mile",
    },
}

# Spellings people write that the generator doesn't. Ounces are mass and fluid ounces both: the other
# unit of a question decides which. "ton" is the metric ton, as it is read in metric settings.
MORE_SPELLINGS = {
    "digital storage": {
        "kb": "kilobyte",
        "kilobyte": "kilobyte",
        "kilobytes": "kilobyte",
        "mb": "megabyte",
        "megabyte": "megabyte",
        "megabytes": "megabyte",
        "gb": "gigabyte",
        "gigabyte": "gigabyte",
        "gigabytes": "gigabyte",
    },
    "speed": {
        "kph": "kilometer / hour",
        "kmph": "kilometer / hour",
        "km/hr": "kilometer / hour",
        "kilometer per hour": "kilometer / hour",
        "kilometers per hour": "kilometer / hour",
        "kilometre per hour": "kilometer / hour",
        "kilometres per hour": "kilometer / hour",
        "mi/hr": "mile / hour",
        "mile per hour": "mile / hour",
        "miles per hour": "mile / hour",
        "miles an hour": "mile / hour",
        "m/sec": "meter / second",
        "meter per second": "meter / second",
        "meters per second": "meter / second",
        "metre per second": "meter / second",
        "metres per second": "meter / second",
        "ft/sec": "foot / second",
        "fps": "foot / second",
        "foot per second": "foot / second",
        "feet per second": "foot / second",
        "inch per second": "inch / second",
        "inches per second": "inch / second",
    },
    "volume": {
        "ml": "milliliter",
        "milliliters": "milliliter",
        "millilitres": "milliliter",
        "cm3": "centimeter ** 3",
        "cm³": "centimeter ** 3",
        "cubic centimeter": "centimeter ** 3",
        "cubic centimeters": "centimeter ** 3",
        "cubic centimetre": "centimeter ** 3",
        "cubic centimetres": "centimeter ** 3",
        "litres": "liter",
        "m3": "meter ** 3",
        "m³": "meter ** 3",
        "cubic meter": "meter ** 3",
        "cubic meters": "meter ** 3",
        "cubic metre": "meter ** 3",
        "cubic metres": "meter ** 3",
        "mm3": "millimeter ** 3",
        "mm³": "millimeter ** 3",
        "cubic millimeter": "millimeter ** 3",
        "cubic millimeters": "millimeter ** 3",
        "cubic millimetre": "millimeter ** 3",
        "cubic millimetres": "millimeter ** 3",
        "pt": "pint",
        "qt": "quart",
        "gal": "gallon",
        "fl oz": "fluid_ounce",
        "fl. oz": "fluid_ounce",
        "fl. oz.": "fluid_ounce",
        "fluid oz": "fluid_ounce",
        "ounce": "fluid_ounce",
        "ounces": "fluid_ounce",
        "oz": "fluid_ounce",
    },
    "mass": {
        "gramme": "gram",
        "grammes": "gram",
        "kgs": "kilogram",
        "kilograms": "kilogram",
        "kilo": "kilogram",
        "kilos": "kilogram",
        "ton": "metric_ton",
        "tons": "metric_ton",
        "metric tons": "metric_ton",
        "metric tonne": "metric_ton",
        "metric tonnes": "metric_ton",
        "oz": "ounce",
        "lb": "pound",
        "lbs": "pound",
    },
    "time": {
        "secs": "second",
        "mins": "minute",
        "hr": "hour",
        "hrs": "hour",
        "wk": "week",
        "wks": "week",
        "yr": "year",
        "yrs": "year",
    },
    "length": {
        "metre": "meter",
        "metres": "meter",
        "kilometer": "kilometer",
        "kilometers": "kilometer",
        "kilometre": "kilometer",
        "kilometres": "kilometer",
        "centimeter": "centimeter",
        "centimeters": "centimeter",
        "centimetre": "centimeter",
        "centimetres": "centimeter",
        "millimeter": "millimeter",
        "millimeters": "millimeter",
        "millimetre": "millimeter",
        "millimetres": "millimeter",
        "yds": "yard",
    },
}

# The spellings our generators write from ({category: {spelling: pint expression}}): `reword` and `reworded`
# (units/generator.py). Fixed, so that the data they made stays reproducible.
WRITTEN = {cat: {**UNITS[cat], **MORE_SPELLINGS[cat]} for cat in UNITS}
# category -> pint expression -> the spellings WRITTEN has for it, in table order: what the generators pick from
WRITTEN_AS: dict[str, dict[str, list[str]]] = {}
for _cat, _spellings in WRITTEN.items():
    for _spelling, _expression in _spellings.items():
        WRITTEN_AS.setdefault(_cat, {}).setdefault(_expression, []).append(_spelling)


def _composed_speeds() -> dict[str, str]:
    """Each speed of the table as people compose it from the written spellings of a length and a time:
    "miles/hour", "km per hr", "metres a second", "inches/sec". Only the five pairs of the table: "km/s" stays
    unknown."""
    composed = {}
    for length, time in (
        ("foot", "second"),
        ("inch", "second"),
        ("kilometer", "hour"),
        ("meter", "second"),
        ("mile", "hour"),
    ):
        for l in WRITTEN_AS["length"][length]:
            for t in WRITTEN_AS["time"][time]:
                composed[f"{l}/{t}"] = composed[f"{l} per {t}"] = f"{length} / {time}"
            if l not in ("m", "in"):  # "miles an hour", "km an hour", "metres a second"; not "m a second"
                composed[f"{l} {'an' if time == 'hour' else 'a'} {time}"] = f"{length} / {time}"
    return composed


# Spellings the reader knows but the generators never write (adding them to WRITTEN would change the data they made).
READ_ONLY = {
    "volume": {
        "mm**3": "millimeter ** 3",
        "cubic mm": "millimeter ** 3",
        "cubic cm": "centimeter ** 3",
        "cubic m": "meter ** 3",
    }
}
# What the reader knows: the written spellings, speeds composed as people write them, and READ_ONLY.
SPELLINGS = {
    cat: {**table, **(_composed_speeds() if cat == "speed" else {}), **READ_ONLY.get(cat, {})}
    for cat, table in WRITTEN.items()
}
MEANINGS: dict[str, dict[str, str]] = {}  # spelling -> {category: pint expression}; most have one category, "ounce" two
for _cat, _spellings in SPELLINGS.items():
    for _spelling, _expression in _spellings.items():
        MEANINGS.setdefault(_spelling, {})[_cat] = _expression


def pair_category(src: str, dst: str) -> str | None:
    """The category that has both spellings (the first in table order if two do, as for "oz" and "ounce")."""
    return next((cat for cat in MEANINGS.get(src, {}) if cat in MEANINGS.get(dst, {})), None)


def unit_name(expression: str) -> str:
    """One name for a unit, whatever spelling a question used: "kilogram" for kg, kilos and kgs; "cubic
    centimeter" for cc and cm^3; "mile per hour" for mph and miles/hour."""
    named = {"cc": "cubic centimeter", "10 * year": "decade"}  # pint's cc is the cubic centimeter
    if expression in named:
        return named[expression]
    name = expression.removesuffix(" ** 3").replace("_", " ").replace(" / ", " per ")
    return f"cubic {name}" if expression.endswith(" ** 3") else name


@functools.cache
def _registry():
    import pint

    return pint.UnitRegistry()


def convert(n: float, src: str, dst: str) -> float:
    """Convert n of spelling src into spelling dst with pint."""
    cat = pair_category(src, dst)
    ratio = n * _registry()(SPELLINGS[cat][src]) / _registry()(SPELLINGS[cat][dst])
    return float(ratio.to("dimensionless").magnitude)


# The answers our generators keep: rounded to 3 decimals (as the grader rounds), a smaller one loses the precision
# the 5% check needs; a larger one is absurd to ask.
ANSWER_RANGE = (0.01, 1e11)


def askable(answer: float) -> bool:
    """Whether a generator may ask a question with this answer (ANSWER_RANGE)."""
    return ANSWER_RANGE[0] <= answer <= ANSWER_RANGE[1]
