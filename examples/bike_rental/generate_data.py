"""Generate synthetic hourly bike-rental data for one city, deterministically.

Why synthetic: the example pipeline must ship with the repository, run offline in seconds and
give a model worth gating (a good model scores R^2 around 0.85, a trivial one near zero). Why
deterministic: the reconciler fingerprints training inputs by *content*, so regenerating the
shipped files must reproduce them byte for byte, or every checkout would look like new data.

Determinism rests on three things: the random generator is seeded from the location name with
``zlib.crc32`` (``hash()`` is salted per process), every value is drawn in a fixed order, and every
number is written with a fixed format. The columns follow the Kaggle / UCI bike-sharing data:

    datetime, season, holiday, workingday, weather, temp, humidity, windspeed, count

``season`` is 1 spring, 2 summer, 3 fall, 4 winter; ``weather`` is 1 clear, 2 mist, 3 light rain
or snow, 4 heavy rain; ``temp`` is in degrees Celsius, ``humidity`` in percent, ``windspeed`` in
km/h, and ``count`` (the target) is the number of rentals started in that hour.

Usage::

    python examples/bike_rental/generate_data.py --location seattle --days 120 --out data/x.csv
    python examples/bike_rental/generate_data.py --all   # rewrite the three shipped files
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
SHIPPED = ("seattle", "portland", "boston")
DEFAULT_DAYS = 120  # 120 days x 24 hours = 2,880 rows, about 125 KB of CSV
START = dt.date(2023, 4, 1)  # spring into summer: a warming trend the model must follow
HEADER = "datetime,season,holiday,workingday,weather,temp,humidity,windspeed,count"

# US federal holidays that fall in the generated windows (2023-2024).
HOLIDAYS = frozenset(
    dt.date.fromisoformat(d)
    for d in (
        "2023-01-02", "2023-01-16", "2023-02-20", "2023-05-29", "2023-06-19", "2023-07-04",
        "2023-09-04", "2023-10-09", "2023-11-10", "2023-11-23", "2023-12-25",
        "2024-01-01", "2024-01-15", "2024-02-19", "2024-05-27", "2024-06-19", "2024-07-04",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class City:
    """What makes one location's demand different from another's."""

    base: float  # rentals per hour at the weekday evening peak in ideal weather
    commute_share: float  # 0..1: how much of working-day demand is commuting
    temp_mean: float  # yearly mean temperature, deg C
    temp_swing: float  # summer-winter half amplitude, deg C
    temp_best: float  # temperature at which demand peaks, deg C
    temp_width: float  # how quickly demand falls away from temp_best, deg C
    rain_tolerance: float  # 0..1: share of demand kept in light rain
    humidity_mean: float  # percent
    weather_mix: tuple[float, float, float, float]  # long-run share of weather states 1..4


CITIES = {
    # Rainy but rain-hardened; mild summers.
    "seattle": City(190.0, 0.65, 11.5, 7.5, 22.0, 11.0, 0.62, 72.0, (0.42, 0.31, 0.22, 0.05)),
    # Smaller, more leisure riding, warmer summers.
    "portland": City(140.0, 0.50, 12.5, 8.5, 24.0, 12.0, 0.52, 68.0, (0.50, 0.28, 0.18, 0.04)),
    # Large commuter system, big seasonal swing, dislikes rain.
    "boston": City(260.0, 0.75, 11.0, 12.5, 25.0, 10.0, 0.38, 66.0, (0.58, 0.24, 0.14, 0.04)),
}


def seed_for(location: str) -> int:
    """Stable seed: ``hash()`` is randomised per process, ``crc32`` is not."""
    return zlib.crc32(location.encode("utf-8"))


def city_for(location: str) -> City:
    """A shipped city's profile, or a plausible one drawn from the name's own seed."""
    if location in CITIES:
        return CITIES[location]
    rng = np.random.default_rng([seed_for(location), 1])  # separate stream from the data
    rain = rng.uniform(0.1, 0.3)
    return City(
        base=float(rng.uniform(80.0, 300.0)),
        commute_share=float(rng.uniform(0.4, 0.8)),
        temp_mean=float(rng.uniform(6.0, 18.0)),
        temp_swing=float(rng.uniform(5.0, 14.0)),
        temp_best=float(rng.uniform(21.0, 26.0)),
        temp_width=float(rng.uniform(9.0, 13.0)),
        rain_tolerance=float(rng.uniform(0.3, 0.7)),
        humidity_mean=float(rng.uniform(55.0, 75.0)),
        weather_mix=(float(0.9 - rain - 0.04), float(0.1 + rain / 2), float(rain / 2), 0.04),
    )


def season_of(day: dt.date) -> int:
    """Meteorological season: 1 spring (Mar-May), 2 summer, 3 fall, 4 winter (Dec-Feb)."""
    return {3: 1, 4: 1, 5: 1, 6: 2, 7: 2, 8: 2, 9: 3, 10: 3, 11: 3}.get(day.month, 4)


def _hour_profile(hour: int, working: bool, commute_share: float) -> float:
    """Relative demand by hour: commute peaks on working days, a midday hump otherwise."""

    def bump(centre: float, width: float) -> float:
        return math.exp(-0.5 * ((hour - centre) / width) ** 2)

    leisure = 0.03 + bump(14.0, 3.2)
    if not working:
        return 0.75 * leisure
    commute = 0.03 + 0.85 * bump(8.0, 1.0) + 1.0 * bump(17.5, 1.3) + 0.25 * bump(12.5, 1.5)
    return commute_share * commute + (1.0 - commute_share) * 0.8 * leisure


def _weather_chain(rng: np.random.Generator, hours: int, mix: tuple[float, ...]) -> np.ndarray:
    """Weather states 1..4 that persist for hours, with the city's long-run mix."""
    stay = 0.88  # an hour keeps the previous hour's weather 88% of the time
    states = np.empty(hours, dtype=np.int64)
    draws = rng.random(hours)
    fresh = rng.choice(4, size=hours, p=np.asarray(mix) / sum(mix)) + 1
    states[0] = fresh[0]
    for i in range(1, hours):
        states[i] = states[i - 1] if draws[i] < stay else fresh[i]
    return states


def generate(location: str, days: int = DEFAULT_DAYS) -> str:
    """The CSV text (header included, ``\\n`` line ends) for ``days`` days at ``location``."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    city = city_for(location)
    rng = np.random.default_rng(seed_for(location))
    hours = days * 24
    weather = _weather_chain(rng, hours, city.weather_mix)
    day_temp = rng.normal(0.0, 1.5, days)  # slow day-to-day anomaly, AR(1) below
    for i in range(1, days):
        day_temp[i] = 0.7 * day_temp[i - 1] + day_temp[i]
    day_mood = rng.lognormal(0.0, 0.12, days)  # events, school terms: unexplained daily swing
    hour_noise = rng.lognormal(0.0, 0.2, hours)  # unexplained hourly swing
    temp_noise = rng.normal(0.0, 0.8, hours)
    humid_noise = rng.normal(0.0, 6.0, hours)
    wind = rng.gamma(2.0, 6.0, hours)  # km/h, mean 12

    rows: list[str] = []
    rates = np.empty(hours)
    for i in range(hours):
        day_index, hour = divmod(i, 24)
        day = START + dt.timedelta(days=day_index)
        holiday = day in HOLIDAYS
        working = day.weekday() < 5 and not holiday
        state = int(weather[i])
        wet = state >= 3
        year_phase = 2.0 * math.pi * (day.timetuple().tm_yday - 200) / 365.0  # peak ~19 July
        diurnal = 4.0 * math.cos(2.0 * math.pi * (hour - 15) / 24.0)  # warmest at 15:00
        temp = (
            city.temp_mean + city.temp_swing * math.cos(year_phase) + diurnal
            + day_temp[day_index] - 2.5 * wet - 1.0 * (state == 2) + temp_noise[i]
        )  # fmt: skip
        humidity = city.humidity_mean - 1.5 * diurnal + 18.0 * wet + 7.0 * (state == 2)
        humidity = min(100.0, max(15.0, humidity + humid_noise[i]))
        windspeed = float(wind[i]) * (1.4 if state == 4 else 1.0)

        rate = city.base * _hour_profile(hour, working, city.commute_share)
        rate *= math.exp(-0.5 * ((temp - city.temp_best) / city.temp_width) ** 2)
        rate *= (1.0, 0.88, city.rain_tolerance, city.rain_tolerance * 0.3)[state - 1]
        rate *= 1.0 - 0.004 * max(0.0, humidity - 60.0)  # muggy hours ride less
        rate *= 1.0 - 0.008 * max(0.0, windspeed - 15.0)  # so do gusty ones
        rates[i] = rate * float(day_mood[day_index]) * float(hour_noise[i])
        rows.append(
            f"{day.isoformat()}T{hour:02d}:00:00,{season_of(day)},{int(holiday)},{int(working)},"
            f"{state},{_fixed(temp, 1)},{_fixed(humidity, 0)},{_fixed(windspeed, 1)}"
        )
    counts = rng.poisson(rates)  # drawn last, so the stream order above never shifts
    lines = [HEADER, *(f"{row},{int(n)}" for row, n in zip(rows, counts, strict=True))]
    return "\n".join(lines) + "\n"


def _fixed(value: float, digits: int) -> str:
    """Fixed-point text without ``-0.0``."""
    return f"{round(value, digits) + 0.0:.{digits}f}"  # -0.0 + 0.0 is 0.0


def write(location: str, days: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(generate(location, days).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--location", help="city name; any name works, shipped ones are tuned")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of hourly rows")
    parser.add_argument("--out", type=Path, help="CSV file to write")
    parser.add_argument(
        "--all", action="store_true", help=f"write {', '.join(SHIPPED)} into {DATA_DIR}"
    )
    args = parser.parse_args(argv)
    if args.all:
        for name in SHIPPED:
            write(name, args.days, DATA_DIR / f"{name}.csv")
        return 0
    if not args.location or not args.out:
        parser.error("give --location and --out, or --all")
    write(args.location, args.days, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
