import datetime as dt
from pathlib import Path

import pytest

from recsys.data.dead_letter import read_dead_letter
from recsys.data.lake import Lake
from recsys.data.movielens import import_movielens
from recsys.errors import BadRecordRatioError, SchemaError, SourceError

MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children
2,"American President, The (1995)",Comedy|Drama|Romance
3,Untitled Project,(no genres listed)
x4,Broken Id (2001),Drama
5,Too,Many,Fields
"""

RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,3.5,964982931
2,1,5.0,1445714835
2,3,abc,1445714900
3,2,4.5
4,1,2.0,1445714999
4,2,11.0,1445715000
five,1,2.0,1445715001
5,3,1.0,99999999999
"""


def write_movielens(root: Path, movies: str = MOVIES, ratings: str = RATINGS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "movies.csv").write_text(movies)
    (root / "ratings.csv").write_text(ratings)
    return root


def test_import_maps_ratings_movies_and_users(tmp_path):
    src = write_movielens(tmp_path / "ml")
    lake = Lake(tmp_path / "lake", create=True)
    report = import_movielens(src, lake, max_bad_fraction=1.0)
    assert (report.items.written, report.items.rejected) == (3, 2)
    assert (report.events.written, report.events.rejected) == (4, 5)
    assert report.users.written == 4  # users 1, 2, 4, 5 have parseable rows ("five" has not)

    items = {r["item_id"]: r for r in lake.read("items").to_pylist()}
    assert items["2"]["title"] == "American President, The (1995)"
    assert items["2"]["category"] == "Comedy"
    assert items["2"]["tags"] == ["Comedy", "Drama", "Romance"]
    assert items["2"]["created_at"] == dt.datetime(1995, 1, 1, tzinfo=dt.timezone.utc)
    assert (items["3"]["category"], items["3"]["tags"], items["3"]["created_at"]) == (
        None, [], None)

    events = {r["event_id"]: r for r in lake.read("events").to_pylist()}
    assert sorted(events) == ["ml-1-1", "ml-1-2", "ml-2-1", "ml-4-1"]
    first = events["ml-1-1"]
    assert (first["user_id"], first["item_id"], first["event_type"], first["rating"]) == (
        "1", "1", "rating", 4.0)
    assert first["timestamp"] == dt.datetime.fromtimestamp(964982703, dt.timezone.utc)
    users = lake.read("users").to_pylist()
    assert sorted(u["user_id"] for u in users) == ["1", "2", "4", "5"]
    assert all(u["country"] is None and u["signup_at"] is None for u in users)


def test_bad_rows_are_in_the_dead_letter_with_file_and_line(tmp_path):
    src = write_movielens(tmp_path / "ml")
    lake = Lake(tmp_path / "lake", create=True)
    report = import_movielens(src, lake, max_bad_fraction=1.0)
    events = {e["location"]: e["reason"] for e in read_dead_letter(report.events.dead_letter)}
    assert events == {
        "ratings.csv:5": "rating: expected a number, got 'abc'",
        "ratings.csv:6": "expected 4 fields, found 3",
        "ratings.csv:8": "rating must lie in [0, 10], got 11.0",
        "ratings.csv:9": "userId: expected an integer, got 'five'",
        "ratings.csv:10": events["ratings.csv:10"],
    }
    assert "is in the future" in events["ratings.csv:10"]
    items = {e["location"]: e["reason"] for e in read_dead_letter(report.items.dead_letter)}
    assert items == {"movies.csv:5": "movieId: expected an integer, got 'x4'",
                     "movies.csv:6": "expected 3 fields, found 4"}


def test_importing_twice_adds_nothing(tmp_path):
    src = write_movielens(tmp_path / "ml")
    lake = Lake(tmp_path / "lake", create=True)
    import_movielens(src, lake, max_bad_fraction=1.0)
    again = import_movielens(src, lake, max_bad_fraction=1.0)
    assert (again.items.written, again.users.written, again.events.written) == (0, 0, 0)
    assert (again.items.already_in_lake, again.events.already_in_lake) == (3, 4)
    assert lake.read("events").num_rows == 4


def test_too_many_bad_rows_fails_before_writing_events(tmp_path):
    src = write_movielens(tmp_path / "ml")
    with pytest.raises(BadRecordRatioError, match="5 of 9 events records .* nothing was written"):
        import_movielens(src, Lake(tmp_path / "lake", create=True), max_bad_fraction=0.5)


def test_missing_directory_or_file_and_wrong_header(tmp_path):
    lake = Lake(tmp_path / "lake", create=True)
    with pytest.raises(SourceError, match="is not a directory"):
        import_movielens(tmp_path / "absent", lake)
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "movies.csv").write_text(MOVIES)
    with pytest.raises(SourceError, match="ratings.csv not found"):
        import_movielens(tmp_path / "ml", lake)
    write_movielens(tmp_path / "ml", ratings="user,item,score,time\n1,1,4.0,964982703\n")
    with pytest.raises(SchemaError, match=r"ratings.csv: header is \['user', 'item', 'score', "
                                          r"'time'\], expected \['userId'"):
        import_movielens(tmp_path / "ml", lake)


def test_non_utf8_file_is_a_clear_error(tmp_path):
    src = write_movielens(tmp_path / "ml")
    (src / "movies.csv").write_bytes(b"movieId,title,genres\n1,Caf\xe9 (1999),Drama\n")
    with pytest.raises(SourceError, match="is not valid UTF-8"):
        import_movielens(src, Lake(tmp_path / "lake", create=True))


@pytest.mark.movielens
def test_ml_latest_small_counts_and_idempotence(tmp_path, movielens_dir):
    lake = Lake(tmp_path / "lake", create=True)
    first = import_movielens(movielens_dir, lake)
    assert (first.events.written, first.items.written, first.users.written) == (
        100_836, 9_742, 610)
    assert first.events.rejected == first.items.rejected == 0
    second = import_movielens(movielens_dir, lake)
    assert (second.events.written, second.items.written, second.users.written) == (0, 0, 0)
    assert second.events.already_in_lake == 100_836
    assert lake.read("events").num_rows == 100_836
