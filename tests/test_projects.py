"""Tests of utils.projects: the capstone project's data sets, their terms and the table a lesson shows."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from utils import data, projects
from utils.projects import (ACCESS_KINDS, IDEAS, PROJECT_DATASETS, REGISTRY_REFERENCES, TASKS, ProjectDataset,
                            get_project_dataset, project_table)


@pytest.mark.parametrize("entry", PROJECT_DATASETS, ids=lambda e: e.name)
def test_every_entry_is_complete(entry):
    assert entry.url.startswith("https://")
    assert entry.licence.strip()
    assert entry.citation.strip()
    assert entry.size_note.strip()
    assert entry.access in ACCESS_KINDS
    assert entry.idea in IDEAS
    assert entry.task in TASKS


@pytest.mark.parametrize("entry", [e for e in PROJECT_DATASETS if e.access != "open download"],
                         ids=lambda e: e.name)
def test_gated_entries_say_how_to_obtain_them(entry):
    assert entry.gated
    first_sentence = entry.note.split(". ")[0]
    assert len(first_sentence.split()) >= 8, f"{entry.name}: the note must start with how to obtain the data"


def test_names_are_unique_and_the_size_is_about_a_dozen_plus_the_registry_rows():
    names = [e.name for e in PROJECT_DATASETS]
    assert len(names) == len(set(names))
    assert 10 <= len(names) - len(REGISTRY_REFERENCES) <= 14


def test_every_idea_and_access_kind_has_an_entry():
    assert {e.idea for e in PROJECT_DATASETS} == set(IDEAS)
    assert {e.access for e in PROJECT_DATASETS} == set(ACCESS_KINDS)
    assert "panoptic" in {e.task for e in PROJECT_DATASETS}


def test_unconfirmed_licences_say_unverified():
    for e in PROJECT_DATASETS:
        if e.licence.startswith("unverified"):
            assert "unverified" in e.note.lower(), e.name


def test_registry_references_exist_and_are_not_duplicated():
    names = {e.name for e in PROJECT_DATASETS}
    for row, registry_names in REGISTRY_REFERENCES.items():
        assert row in names
        assert registry_names
        for n in registry_names:
            assert n in data.REGISTRY, f"{row} refers to {n!r}, which utils.data.REGISTRY lacks"
        entry = get_project_dataset(row)
        first = data.REGISTRY[registry_names[0]]
        assert entry.url == first.url and entry.citation == first.citation
        assert first.licence in entry.licence
        assert f"fetch({registry_names[0]!r})" in entry.note
    # no other row copies a registry address
    registry_urls = {e.url for e in data.REGISTRY.values()}
    for e in PROJECT_DATASETS:
        if e.name not in REGISTRY_REFERENCES:
            assert e.url not in registry_urls, e.name


def test_table_rows_and_filtering_by_idea():
    rows = project_table()
    assert [r["name"] for r in rows] == [e.name for e in PROJECT_DATASETS]
    assert set(rows[0]) == {"name", "idea", "task", "access", "licence", "url", "size", "registry", "citation",
                            "note"}
    for idea in IDEAS:
        chosen = project_table(idea)
        assert chosen, idea
        assert all(r["idea"] == idea for r in chosen)
        assert [r["name"] for r in chosen] == [e.name for e in PROJECT_DATASETS if e.idea == idea]
    skin = project_table(idea="skin lesions")
    assert [r["name"] for r in skin] == ["isic2018_task1"]
    own = {r["name"]: r["registry"] for r in project_table("your own data")}
    assert own["oxford_pet"] == "oxford_pet_images, oxford_pet_annotations"


def test_table_is_a_pandas_frame():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(project_table("road scenes"))
    assert list(frame["name"]) == ["cityscapes", "bdd100k"]


@pytest.mark.parametrize("idea", ["satellite", "Skin lesions", 3, ""])
def test_bad_idea_raises_a_helpful_error(idea):
    with pytest.raises(ValueError) as err:
        project_table(idea)
    message = str(err.value)
    assert "`idea`" in message and repr(idea) in message
    assert "'satellite imagery'" in message and "'your own data'" in message


@pytest.mark.parametrize("name", ["city_scapes", "", None])
def test_unknown_name_raises_and_lists_the_known_names(name):
    with pytest.raises(ValueError) as err:
        get_project_dataset(name)
    message = str(err.value)
    assert "`name`" in message and repr(name) in message
    for e in PROJECT_DATASETS:
        assert e.name in message


def test_get_project_dataset():
    entry = get_project_dataset("cityscapes")
    assert entry.idea == "road scenes" and entry.access == "registration"
    assert get_project_dataset("oxford_pet").idea == "your own data"


def test_entries_are_frozen():
    with pytest.raises(FrozenInstanceError):
        PROJECT_DATASETS[0].url = "https://example.org/"


def _valid(**changes) -> ProjectDataset:
    base = dict(name="demo", idea="road scenes", task="semantic", url="https://example.org/data",
                licence="CC BY 4.0", access="open download", size_note="10 images", citation="A paper.", note="")
    base.update(changes)
    return ProjectDataset(**base)


@pytest.mark.parametrize("changes, field", [
    (dict(name="Demo Set"), "`name`"),
    (dict(idea="cats"), "`idea`"),
    (dict(task="depth"), "`task`"),
    (dict(access="by email"), "`access`"),
    (dict(url="http://example.org/data"), "`url`"),
    (dict(url="example.org"), "`url`"),
    (dict(licence=" "), "`licence`"),
    (dict(citation=""), "`citation`"),
    (dict(size_note=""), "`size_note`"),
])
def test_bad_fields_raise_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        _valid(**changes)


@pytest.mark.parametrize("access", ["registration", "licence-gated"])
def test_a_gated_entry_without_a_note_is_refused(access):
    with pytest.raises(ValueError, match="how to obtain"):
        _valid(access=access)
    assert _valid(access=access, note="Register on the site and accept the terms.").gated


def test_replace_revalidates():
    with pytest.raises(ValueError, match="`access`"):
        replace(get_project_dataset("loveda"), access="ask nicely")


def test_importing_projects_stays_cheap():
    import subprocess
    import sys

    code = ("import sys, utils.projects; heavy = {'torch', 'cv2', 'matplotlib', 'pandas'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(projects.__file__).rsplit("/utils/", 1)[0])
    assert out.stdout.strip() == "[]"
