"""The question reader against questions as people type them. No model is involved."""
import json
import re

import pytest

pytest.importorskip("pint", reason="computes the answers these tests check (absent on the GPU machine)")

from homework.units import generator, reader, table as units
from homework.data import DATA_DIR, Dataset

CASES = [
    # question, expected (quantity, source spelling, target spelling) or None, why
    ("How many gram are there per 6 kg?", (6, "kg", "gram"), "the generator's own phrasing"),
    ("How many inches in 3 feet?", (3, "feet", "inches"), "the target first, the counted unit is the source"),
    ("3 ft to inches", (3, "ft", "inches"), "terse, no verb"),
    ("convert 2.5 kg to pounds", (2.5, "kg", "pounds"), "a decimal quantity"),
    ("What's 10 mph in km/h", (10, "mph", "km/h"), "an apostrophe s is not the second"),
    ("5 m expressed in cm, please", (5, "m", "cm"), "the preposition in before a unit"),
    ("From fluid ounce to millilitre, what is 4 units?", (4, "fluid ounce", "millilitre"), "from X to Y, the quantity far away"),
    ("How does 6 miles measure up in m?", (6, "miles", "m"), "two length units and the preposition"),
    ("How many ounce is 6 quart?", (6, "quart", "ounce"), "ounce beside a volume is the fluid ounce"),
    ("How heavy is 5 ton in kg?", (5, "ton", "kg"), "ton is the metric ton"),
    ("3 kelvin in celsius", None, "units we don't know: not a length question"),
    ("Express 2 cm as a quantity of in.", (2, "cm", "in"), "in after 'of' is the inch"),
    ("How many in are there per 8 ft?", (8, "ft", "in"), "in after 'how many' is the inch"),
    ("What is 10 in in cm?", (10, "in", "cm"), "in right after the quantity is the inch"),
    ("Find the number of in in 5 ft.", (5, "ft", "in"), "the inch, then the preposition before the quantity"),
    ("What is 5 ft in in?", (5, "ft", "in"), "the preposition, then the inch at the end"),
    ("What does 5 ft equal in in terms?", (5, "ft", "in"), "in after in is the inch"),
    ("How many cm in 3 in?", (3, "in", "cm"), "the inch counted by the quantity"),
    ("5 ft -> in", (5, "ft", "in"), "in as the last word is the inch"),
    ("What do 6 day come to in months?", (6, "day", "months"), "'to in months': in before a unit is the preposition"),
    ("Could you give the conversion from in to cm for 3 units?", (3, "in", "cm"), "in after 'from'"),
    ("5 furlongs in m", None, "an unknown unit and a preposition: one unit is not a question"),
    ("How many kg in 3 feet", None, "units of two categories"),
    ("What is 5 kg?", None, "one unit only"),
    ("How many grams in a kilogram?", (1, "kilogram", "grams"), "'a' before a unit is one"),
    ("How many minutes are in two hours?", (2, "hours", "minutes"), "a quantity in words"),
    ("How many millimetres is 1/2 inch?", (0.5, "inch", "millimetres"), "a fraction, not the 2 of it"),
    ("Convert 1 1/2 hours to minutes", (1.5, "hours", "minutes"), "a whole number and a fraction"),
    ("1/0 kg in g", None, "no quantity: a fraction over zero"),
    ("1 1/0 kg in g", None, "nor a whole number and one"),
    ("How many grams in kilograms?", None, "no quantity"),
    ("1,000 g to kg", (1000, "g", "kg"), "a thousands separator"),
    ("Convert 12,500.5 mL to l", (12500.5, "mL", "l"), "a separator and a decimal"),
    ("what is .5 gal in qt", (0.5, "gal", "qt"), "no leading zero"),
    ("6kg in lb", (6, "kg", "lb"), "no space between quantity and unit"),
    ("a 5-kg bag in pounds", (5, "kg", "pounds"), "a hyphen between quantity and unit"),
    ("What is 5 KG in Pounds?", (5, "kg", "pounds"), "capitals on spellings that mean one thing"),
    ("How many Feet are in 2 Miles?", (2, "miles", "feet"), "capitalised words"),
    ("How many M are there per 3 G?", (3, "G", "M"), "capital M and G are mega- and gigabytes"),
    ("Convert 3 m into M", None, "meter and megabyte: two categories"),
    ("3 g to G", None, "gram and gigabyte: two categories"),
    ("In 3 feet, how many cm?", (3, "feet", "cm"), "'In' opening the sentence is a word"),
    ("In cm, what is 3 ft?", (3, "ft", "cm"), "'In' before the target"),
    ("7 fl oz in mL", (7, "fl oz", "mL"), "fl oz"),
    ("8 oz to lbs", (8, "oz", "lbs"), "oz beside pounds is mass"),
    ("8 oz to pints", (8, "oz", "pints"), "oz beside pints is the fluid ounce"),
    ("3 hrs in mins", (3, "hrs", "mins"), "hour and minute abbreviations"),
    ("2 yrs to wks", (2, "yrs", "wks"), "year and week abbreviations"),
    ("45 secs to min", (45, "secs", "min"), "secs"),
    ("How many sec in 3 hr?", (3, "hr", "sec"), "sec and hr"),
    ("90 kph in m/s", (90, "kph", "m/s"), "kph"),
    ("60 miles per hour to kilometres per hour", (60, "miles per hour", "kilometres per hour"), "speeds in words, British spelling"),
    ("10 meters per second in mph", (10, "meters per second", "mph"), "per inside a speed is not the per of 'how many per'"),
    ("12 ft/sec to km/hr", (12, "ft/sec", "km/hr"), "other speed abbreviations"),
    ("2 metres in centimetres", (2, "metres", "centimetres"), "British spellings"),
    ("4 kilometers to miles", (4, "kilometers", "miles"), "a prefix written out"),
    ("3 cubic metres in litres", (3, "cubic metres", "litres"), "cubic in words"),
    ("How many cm^3 in 2 L?", (2, "L", "cm^3"), "a power in the spelling holds no quantity"),
    ("5 m**3 to cm**3", (5, "m**3", "cm**3"), "the other power sign"),
    ("2 m³ in cm³", (2, "m³", "cm³"), "superscript three"),
    ("6 cm3 to mm3", (6, "cm3", "mm3"), "a bare 3 after the unit"),
    ("2 tonnes to kgs", (2, "tonnes", "kgs"), "tonne and kgs"),
    ("2 metric tons in lb", (2, "metric tons", "lb"), "a two-word mass unit"),
    ("3 kilos in grammes", (3, "kilos", "grammes"), "kilo and gramme"),
    ("500 MB to GB", (500, "MB", "GB"), "storage"),
    ("2 gb in mb", (2, "gb", "mb"), "storage in lower case"),
    ("16 bits to bytes", (16, "bits", "bytes"), "bits and bytes"),
    ("8 KB in B", (8, "KB", "B"), "a bare B is the byte"),
    ("3 decades in years", (3, "decades", "years"), "decade, not pint's logarithmic one"),
    ("2 centuries in days", (2, "centuries", "days"), "irregular plural"),
    ("5 kg  to   g", (5, "kg", "g"), "runs of spaces"),
    ("5 fluid   ounces in mL", (5, "fluid ounces", "mL"), "runs of spaces inside a two-word unit"),
    ("I'm at 5 km, how many m is that?", (5, "km", "m"), "the m of I'm is not a meter"),
    ("Is 10 s more than 1 min?", None, "two quantities, neither a conversion"),
    ("5 kg in g and 3 lb", None, "three units"),
    ("", None, "empty text"),
    (None, None, "not even text"),
    ("How many in are in 3 ft?", (3, "ft", "in"), "the inch after 'how many', the preposition after 'are'"),
    ("How many minutes in a day?", (1, "day", "minutes"), "'a' is one, right before its unit"),
    ("What is 1,024 MB in GB?", (1024, "MB", "GB"), "a thousands separator in a number that isn't round"),
    ("If a car travels at 30 m/s, what is its speed in km/h?", (30, "m/s", "km/h"), "a word problem: 'a car' is no quantity"),
    ("A file is 4 GB. How many MB is that?", (4, "GB", "MB"), "two sentences, the question in the second"),
    ("What is 5 feet 2 inches in cm?", None, "a compound length: three units, two of them counted"),
    ("What's 2 cups in ml?", None, "a unit we don't know, beside one we do"),
    ("Convert 5 miles/hour to km/h", (5, "miles/hour", "km/h"), "a speed composed of a length and a time"),
    ("3 km per hour in m/s", (3, "km per hour", "m/s"), "an abbreviation per a word"),
    ("2 inches/sec to ft/s", (2, "inches/sec", "ft/s"), "inches over sec"),
    ("9 in/sec in m/s", (9, "in/sec", "m/s"), "in/sec is the inch, in before m/s the preposition"),
    ("100 km an hour in mph", (100, "km an hour", "mph"), "an hour"),
    ("3 metres a second in km/h", (3, "metres a second", "km/h"), "a second, British spelling"),
    ("7 km/s in m/s", None, "a speed the table lacks: km is not read out of km/s"),
    ("5 ft/min to m/s", None, "nor ft out of ft/min"),
    ("What is 2 square meters in square feet?", None, "areas: two lengths squared in words are no length question"),
    ("How many sq. ft in 3 m?", None, "sq. ft is an area"),
    ("How many cubic inches in 2 cubic feet?", None, "volumes the table lacks are no length question"),
    ("3 cu ft in in", None, "cu ft is a volume"),
    ("2 cubic meters in litres", (2, "cubic meters", "litres"), "the table's own cubic spelling still reads"),
    ("Convert 1.5e-3 km to mm", (0.0015, "km", "mm"), "an exponent: not the 3 of it"),
    ("4.5E2 m to km", (450.0, "m", "km"), "a capital E"),
    ("Convert 9 ounces (oz) to grams (g)", (9, "ounces", "grams"), "each unit restated in brackets"),
    ("How many litres (L) in 4 gallons (gal)?", (4, "gallons", "litres"), "brackets, the target first"),
    ("How many grams in fifteen pounds?", (15, "pounds", "grams"), "a teen in words"),
    ("twenty-five miles to km", (25, "miles", "km"), "tens and ones joined by a hyphen"),
    ("Convert two thousand meters to km", (2000, "meters", "km"), "two thousand, not the thousand alone"),
    ("two hundred and fifty grams in ounces", (250, "grams", "ounces"), "hundreds with a British 'and'"),
    ("a million bytes in MB", (1000000, "bytes", "MB"), "a million"),
    ("How many liters in half a gallon?", (0.5, "gallon", "liters"), "half a: not the 'a' alone"),
    ("What is a quarter of a mile in feet?", (0.25, "mile", "feet"), "a quarter of a"),
    ("Convert three quarters of an hour to minutes", (0.75, "hour", "minutes"), "three quarters of an"),
    ("three and a half hours in minutes", (3.5, "hours", "minutes"), "a whole number and a half, in words"),
    ("2 and a half kg to lb", (2.5, "kg", "lb"), "digits and a half"),
    ("How many minutes in an hour and a half?", None, "the half after its unit: no one quantity to rewrite"),
    ("the weight of a pound in grams", (1, "pound", "grams"), "'of a' is one: 'of' starts no number"),
]


@pytest.mark.parametrize("question,expected,why", CASES, ids=[c[2] for c in CASES])
def test_read_question(question, expected, why):
    assert reader.read_question(question) == expected, why


@pytest.mark.parametrize("question,cat", [
    ("How many ounce is 6 quart?", "volume"), ("How many ounce is 6 pounds?", "mass"),
    ("5 fl oz in oz", "volume"), ("What is 3 kelvin in celsius?", "unknown"), ("How many in in 2 ft?", "length"),
])
def test_category_comes_from_the_reader(question, cat):
    assert reader.category(question) == cat


@pytest.mark.parametrize("split", ["train", "valid"])
def test_reader_reads_every_question_of_ours(split):
    for question, answer in Dataset(split).data:
        reading = reader.read_question(question)
        assert reading is not None, question
        assert units.convert(*reading) == pytest.approx(answer, rel=1e-12), question


def test_every_new_spelling_is_one_that_pint_converts():
    for cat, spellings in units.SPELLINGS.items():
        reference = next(iter(units.UNITS[cat]))
        for spelling in spellings:
            assert units.convert(1, spelling, reference) > 0, spelling


# --- the reworded evaluation set ---

REWORDED = json.loads((DATA_DIR / "reworded.json").read_text())


def test_reworded_set_is_made_by_its_script():
    rows = generator.reworded()
    assert [[q, a] for q, a, _ in rows] == REWORDED
    assert len(REWORDED) >= 300 and len({q for q, _ in REWORDED}) == len(REWORDED)


def test_reworded_templates_are_our_own():
    assert len(generator.TEMPLATES) >= 40 and len(set(generator.TEMPLATES)) == len(generator.TEMPLATES)
    assert not set(generator.TEMPLATES) & set(generator.PHRASINGS)


def test_reworded_questions_are_not_in_train_or_valid():
    ours = {q for split in ("train", "valid") for q, _ in Dataset(split).data}
    assert not ours & {q for q, _ in REWORDED}
    rft = json.loads((DATA_DIR / "rft.json").read_text())
    assert not {q for q, _, _ in rft} & {q for q, _ in REWORDED}  # never trained on


def test_reader_reads_the_reworded_set_as_it_was_made():
    rows = generator.reworded()
    misses = [(q, reader.read_question(q), made) for q, _, made in rows if reader.read_question(q) != made]
    assert len(misses) <= 0.02 * len(rows), misses


def test_reworded_answers_agree_with_pint():
    import pint

    ureg = pint.UnitRegistry()
    for (q, answer), (_, _, (n, src, dst)) in zip(REWORDED, generator.reworded()):
        cat = units.pair_category(src, dst)
        expected = (n * ureg(units.SPELLINGS[cat][src]) / ureg(units.SPELLINGS[cat][dst])).to("dimensionless").magnitude
        assert answer == pytest.approx(expected, rel=1e-12), q


# --- training questions asked in other words (generator.reword, for sft train --more_wordings) ---


def test_reword_asks_the_same_conversion_in_the_generators_phrasings():
    import pint

    ureg = pint.UnitRegistry()
    train = Dataset("train").data[:300]
    rows = generator.reword(train, seed=1, copies=2)
    assert len(rows) >= 0.9 * 2 * len(train)  # few are dropped (a clash, an answer out of range)
    templates = [re.compile(re.escape(p).replace(r"\{n\}", "(?P<n>.+)").replace(r"\{src\}", ".+").replace(r"\{dst\}", ".+"))
                 for p in generator.PHRASINGS]
    quantities = set()
    for q, answer in rows:
        assert any(t.fullmatch(q) for t in templates), q  # the generator's phrasings, never the reworded set's
        n, src, dst = reader.read_question(q)
        cat = units.pair_category(src, dst)
        expected = (n * ureg(units.SPELLINGS[cat][src]) / ureg(units.SPELLINGS[cat][dst])).to("dimensionless").magnitude
        assert answer == pytest.approx(expected, rel=1e-6), q
        quantities.add(type(n) is float or n > 10)
    assert quantities == {True, False}  # other quantities than the generator's 1 to 10
    assert not {q for q, _ in rows} & {q for split in ("train", "valid") for q, _ in Dataset(split).data}
    assert not {q for q, _ in rows} & {q for q, _ in REWORDED}
    assert generator.reword(train, seed=1, copies=2) == rows  # seeded


def test_reword_uses_other_spellings_of_the_same_units():
    rows = generator.reword([["How many g are there per 6 kg?", 6000.0]], seed=0, copies=40)
    spellings = {reader.read_question(q)[1:] for q, _ in rows}
    assert len(spellings) > 5 and all(units.SPELLINGS["mass"][s] == "kilogram" and units.SPELLINGS["mass"][d] == "gram"
                                      for s, d in spellings)


# --- each training pair asked at the common quantities (generator.on_grid) ---


def conversion(question: str) -> tuple[tuple[str, str], float]:
    """(the two units, the quantity) that a question asks, whatever its wording and spellings."""
    reading = reader.read_question(question)
    return reading.units, reading.n


def test_on_grid_asks_every_pair_at_each_quantity_its_rows_do_not():
    rows = [["How many g are there per 6 kg?", 6000.0], ["What is 2 kilograms in grams?", 2000.0],
            ["How many ft are there per 3 yd?", 9.0]]
    grid = generator.on_grid(rows, quantities=[1, 2, 2.5, 6], seed=3)
    assert [(*conversion(q), a) for q, a in grid] == [
        (("kilogram", "gram"), 1, 1000.0), (("kilogram", "gram"), 2.5, 2500.0),  # not 2 or 6: the rows ask them
        (("yard", "foot"), 1, 3.0), (("yard", "foot"), 2, 6.0), (("yard", "foot"), 2.5, 7.5), (("yard", "foot"), 6, 18.0)]
    assert generator.on_grid(rows, quantities=[1, 2, 2.5, 6], seed=3) == grid  # seeded


def test_on_grid_per_pair_asks_each_pair_at_that_many_of_the_quantities_it_does_not_ask():
    rows = [["How many g are there per 6 kg?", 6000.0], ["How many ft are there per 3 yd?", 9.0]]
    thousands = [500 * i for i in range(2, 20)]  # 1000 to 9500
    grid = generator.on_grid(rows, quantities=thousands, seed=1, per_pair=4)
    by_pair = {}
    for q, a in grid:
        pair, n = conversion(q)
        by_pair.setdefault(pair, []).append(n)
        assert a == pytest.approx(units.convert(n, *pair), rel=1e-9), q
    assert sorted(by_pair) == [("kilogram", "gram"), ("yard", "foot")]
    assert all(len(ns) == 4 and len(set(ns)) == 4 and set(ns) <= set(thousands) for ns in by_pair.values())
    assert by_pair["kilogram", "gram"] != by_pair["yard", "foot"]  # picked for each pair, not one pick for all
    assert generator.on_grid(rows, quantities=thousands, seed=1, per_pair=4) == grid  # seeded
    few = generator.on_grid(rows, quantities=[1, 2, 6], per_pair=5)  # more than there are: all of them, in order
    assert [conversion(q) for q, _ in few] == [(("kilogram", "gram"), 1), (("kilogram", "gram"), 2),
                                              (("yard", "foot"), 1), (("yard", "foot"), 2), (("yard", "foot"), 6)]


def test_on_grid_of_the_training_set_stays_in_the_generators_phrasings_with_pints_answers():
    train = Dataset("train").data
    grid = generator.on_grid(train)
    per_unit = {pair: a / n for q, a in train for pair, n in [conversion(q)]}
    trained = {conversion(q) for q, _ in train}
    asked = trained | {conversion(q) for q, _ in grid}
    assert len(asked) == len(grid) + len(trained)  # no grid question asks what a training row asks
    left_out = [(pair, n) for pair in per_unit for n in generator.GRID if (pair, n) not in asked]
    # answers too small to grade (a byte in GB), and a few questions that read back in another spelling of the
    # same unit ("Work out 8 pt in units of fl. oz." reads "fl. oz.", not "fl. oz"), which `_asked` drops
    gradable = [(pair, n) for pair, n in left_out if 0.01 <= per_unit[pair] * n <= 1e11]
    assert len(gradable) < 0.01 * len(grid) and len(left_out) < 0.1 * len(per_unit) * len(generator.GRID)
    templates = [re.compile(re.escape(p).replace(r"\{n\}", ".+").replace(r"\{src\}", ".+").replace(r"\{dst\}", ".+"))
                 for p in generator.PHRASINGS]
    for q, answer in grid[::7]:
        assert any(t.fullmatch(q) for t in templates), q
        assert conversion(q)[1] in generator.GRID
        assert answer == pytest.approx(units.convert(*reader.read_question(q)), rel=1e-6), q  # pint's answer
    assert not {q for q, _ in grid} & {q for q, _ in REWORDED}
