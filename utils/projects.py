"""Data sets for the capstone project (lesson 12): one row per project idea's data, with its terms.

``PROJECT_DATASETS`` lists, for each project idea, data sets a learner can build a project on: the official
address, the licence or terms as the publisher states them, how access is granted and, for sets behind a
registration or an agreement, one sentence on how to obtain them. Nothing here downloads anything: the
course downloads only through :func:`utils.data.fetch` and its ``REGISTRY``, and a project's data is the
learner's to obtain under its own terms.

Data sets the course already downloads (Oxford-IIIT Pet, Penn-Fudan, the Data Science Bowl nuclei) are not
described twice: their rows take the address, licence and citation from ``utils.data.REGISTRY``, and
``REGISTRY_REFERENCES`` names the registry entries each of them stands for.

Facts that could not be confirmed from the publisher's own page say "unverified" in the entry's ``note``;
check them on the official page before relying on them.

Examples
--------
>>> import pandas as pd                                              # doctest: +SKIP
>>> pd.DataFrame(project_table(idea="skin lesions"))                 # doctest: +SKIP
>>> get_project_dataset("cityscapes").access
'registration'
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .data import REGISTRY

__all__ = ["IDEAS", "TASKS", "ACCESS_KINDS", "ProjectDataset", "PROJECT_DATASETS", "REGISTRY_REFERENCES",
           "project_table", "get_project_dataset"]

IDEAS = (
    "satellite imagery",
    "tumours in CT/MRI",
    "skin lesions",
    "road scenes",
    "cars (background removal)",
    "your own data",
    "SAM or SegFormer on custom data",
)
"""The project ideas of lesson 12, in the order the lesson lists them."""

TASKS = ("semantic", "instance", "panoptic")
"""The segmentation task a data set's labels support most directly."""

ACCESS_KINDS = ("open download", "registration", "licence-gated")
"""How access is granted: anyone may download; an account (and accepting terms online) is needed; or a
data-use agreement, an approval or a competition's rules must be accepted first."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class ProjectDataset:
    """One data set a capstone project can use.

    Parameters
    ----------
    name : str
        Short key, lower case letters, digits and underscores (``"cityscapes"``).
    idea : str
        One of :data:`IDEAS`.
    task : str
        One of :data:`TASKS`: what the labels support most directly.
    url : str
        The official address (``https://``): the publisher's page, or for a set in the course registry its
        registry address.
    licence : str
        The licence or terms of use, as the publisher states them (or "unverified" and why).
    access : str
        One of :data:`ACCESS_KINDS`.
    size_note : str
        Approximate size: images or cases, and the download's size where known.
    citation : str
        The work to cite.
    note : str
        For ``"registration"`` and ``"licence-gated"`` sets, first one sentence on how to obtain the data;
        then anything else a learner should know, including which facts are unverified.
    """

    name: str
    idea: str
    task: str
    url: str
    licence: str
    access: str
    size_note: str
    citation: str
    note: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"`name` must be lower case letters, digits and underscores, got {self.name!r}")
        if self.idea not in IDEAS:
            raise ValueError(f"`idea` of {self.name!r} must be one of {IDEAS}, got {self.idea!r}")
        if self.task not in TASKS:
            raise ValueError(f"`task` of {self.name!r} must be one of {TASKS}, got {self.task!r}")
        if self.access not in ACCESS_KINDS:
            raise ValueError(f"`access` of {self.name!r} must be one of {ACCESS_KINDS}, got {self.access!r}")
        if not isinstance(self.url, str) or not re.match(r"https://[^/\s]+/\S*$", self.url):
            raise ValueError(f"`url` of {self.name!r} must be an https:// address, got {self.url!r}")
        for field in ("licence", "size_note", "citation"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`{field}` of {self.name!r} must be a non-empty string, got {value!r}")
        if not isinstance(self.note, str):
            raise ValueError(f"`note` of {self.name!r} must be a string, got {self.note!r}")
        if self.access != "open download" and not self.note.strip():
            raise ValueError(f"entry {self.name!r} is {self.access!r}: its `note` must say how to obtain the data")

    @property
    def gated(self) -> bool:
        """Whether the data needs more than a plain download (a registration or an agreement)."""
        return self.access != "open download"


def _human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if value >= 10 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _from_registry(name: str, registry_names: tuple[str, ...], idea: str, task: str, note: str) -> ProjectDataset:
    """A row for data the course registry already holds: address, licence and citation come from it."""
    entries = [REGISTRY[n] for n in registry_names]
    first = entries[0]
    licences = list(dict.fromkeys(e.licence for e in entries))
    # one entry's licence may repeat another's with a qualification ("CC BY-SA 4.0" and "CC BY-SA 4.0 (...)")
    licences = [a for a in licences if not any(a != b and b.startswith(a) for b in licences)]
    size = sum(e.size_bytes for e in entries)
    fetches = ", ".join(f"fetch({n!r})" for n in registry_names)
    return ProjectDataset(
        name=name, idea=idea, task=task, url=first.url,
        licence="; ".join(licences),
        access="open download",
        size_note=f"about {_human_size(size)} to download ({', '.join(registry_names)})",
        citation=first.citation,
        note=f"In the course registry: utils.data.{fetches}. " + note,
    )


REGISTRY_REFERENCES: dict[str, tuple[str, ...]] = {
    "oxford_pet": ("oxford_pet_images", "oxford_pet_annotations"),
    "penn_fudan": ("penn_fudan",),
    "dsb2018_nuclei": ("dsb2018_stage1_train",),
}
"""Rows of :data:`PROJECT_DATASETS` that stand for entries of ``utils.data.REGISTRY`` (row name -> registry
names)."""


PROJECT_DATASETS: tuple[ProjectDataset, ...] = (
    # ---------------------------------------------------------------- satellite imagery
    ProjectDataset(
        name="spacenet",
        idea="satellite imagery",
        task="instance",
        url="https://registry.opendata.aws/spacenet/",
        licence="varies by release: the AWS Open Data registry states 'Various' and points to "
                "https://spacenet.ai/datasets/; TorchGeo's dataset table lists SpaceNet 1-8 as CC BY-SA 4.0, "
                "and the SpaceNet 9 archive's LICENSE file states CC BY-NC 4.0",
        access="open download",
        size_note="tens of GB per challenge (e.g. the AOI 2 Las Vegas building tiles, about 23 GB); building "
                  "footprints and road networks as GeoJSON over WorldView imagery",
        citation="A. Van Etten, D. Lindenbaum, T. M. Bacastow. SpaceNet: A Remote Sensing Dataset and Challenge "
                 "Series. arXiv:1807.01232, 2018.",
        note="Files lie in the public S3 bucket spacenet-dataset (us-east-1); list and copy them with the AWS "
             "command-line client. Read the licence of the release you use on spacenet.ai: it differs between "
             "challenges.",
    ),
    ProjectDataset(
        name="loveda",
        idea="satellite imagery",
        task="semantic",
        url="https://github.com/Junjue-Wang/LoveDA",
        licence="CC BY-NC-SA 4.0 (as the official repository's README states)",
        access="open download",
        size_note="5,987 images of 1024x1024 pixels at 0.3 m (Nanjing, Changzhou, Wuhan), 7 land-cover classes, "
                  "urban and rural domains",
        citation="J. Wang, Z. Zheng, A. Ma, X. Lu, Y. Zhong. LoveDA: A Remote Sensing Land-Cover Dataset for "
                 "Domain Adaptive Semantic Segmentation. NeurIPS Datasets and Benchmarks Track, 2021.",
        note="The README links the data on Google Drive; test scores come from the organisers' CodaLab "
             "competitions. Non-commercial use only.",
    ),
    ProjectDataset(
        name="inria_aerial",
        idea="satellite imagery",
        task="semantic",
        url="https://project.inria.fr/aerialimagelabeling/",
        licence="unverified: no licence could be confirmed from the project page; secondary sources say it was "
                "built from public-domain imagery and public-domain building footprints",
        access="open download",
        size_note="180 labelled training tiles of 5000x5000 pixels at 0.3 m (Austin, Chicago, Kitsap, Tyrol, "
                  "Vienna), building / not building; about 26 GB unpacked (secondary source)",
        citation="E. Maggiori, Y. Tarabalka, G. Charpiat, P. Alliez. Can Semantic Labeling Methods Generalize to "
                 "Any City? The Inria Aerial Image Labeling Benchmark. IGARSS 2017.",
        note="The project page offers the archives and a download script (files.inria.fr); the test tiles' labels "
             "were never released, so split the training cities yourself. Licence unverified: read the project "
             "page before publishing results or derived data.",
    ),
    # ---------------------------------------------------------------- tumours in CT/MRI
    ProjectDataset(
        name="medical_decathlon",
        idea="tumours in CT/MRI",
        task="semantic",
        url="https://registry.opendata.aws/msd/",
        licence="CC BY-SA 4.0 (as medicaldecathlon.com and the AWS Open Data registry state)",
        access="open download",
        size_note="10 tasks of 3D CT or MRI volumes in NIfTI, e.g. brain tumours (484 training volumes), liver "
                  "and tumour (131), also lung, pancreas, colon and hepatic-vessel tumours",
        citation="M. Antonelli et al. The Medical Segmentation Decathlon. Nature Communications (2022), "
                 "doi:10.1038/s41467-022-30695-9; "
                 "A. L. Simpson et al. A large annotated medical image dataset for the development and evaluation "
                 "of segmentation algorithms. arXiv:1902.09063, 2019.",
        note="The project page is http://medicaldecathlon.com; the tasks are mirrored as .tar archives in the "
             "public S3 buckets msd-for-monai (us-west-2) and msd-for-monai-eu. MONAI's DecathlonDataset reads "
             "them.",
    ),
    ProjectDataset(
        name="brats",
        idea="tumours in CT/MRI",
        task="semantic",
        url="https://www.med.upenn.edu/cbica/brats2020/data.html",
        licence="terms accepted when registering with the organisers (research use, cite the challenge papers); "
                "the exact terms are unverified",
        access="licence-gated",
        size_note="multi-parametric brain MRI (T1, T1Gd, T2, FLAIR) in NIfTI: 369 training cases in BraTS 2020, "
                  "1,251 in BraTS 2021; labels for enhancing tumour, oedema and necrotic core",
        citation="B. H. Menze et al. The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS). IEEE "
                 "Transactions on Medical Imaging, 2015; U. Baid et al. The RSNA-ASNR-MICCAI BraTS 2021 Benchmark "
                 "on Brain Tumor Segmentation and Radiogenomic Classification, 2021.",
        note="Register through the challenge's Registration/Data Request page (for BraTS 2021 and later, "
             "through the challenge's Synapse project) and accept the data use terms; the data link comes "
             "after approval. Access terms and current edition unverified beyond the 2020 data page.",
    ),
    ProjectDataset(
        name="kits19",
        idea="tumours in CT/MRI",
        task="semantic",
        url="https://kits19.grand-challenge.org/data/",
        licence="CC BY-NC-SA (as the challenge's data page states; the code in the GitHub repository is MIT)",
        access="open download",
        size_note="210 contrast-enhanced abdominal CT volumes with kidney and tumour labels (0 background, "
                  "1 kidney, 2 tumour), about 20 GB",
        citation="N. Heller et al. The KiTS19 Challenge Data: 300 Kidney Tumor Cases with Clinical Context, CT "
                 "Semantic Segmentations, and Surgical Outcomes. arXiv:1904.00445, 2019.",
        note="The data page points to the GitHub repository neheller/kits19, whose data/ folder is stored with "
             "git-lfs (install it before cloning). Non-commercial use only.",
    ),
    # ---------------------------------------------------------------- skin lesions
    ProjectDataset(
        name="isic2018_task1",
        idea="skin lesions",
        task="semantic",
        url="https://challenge.isic-archive.com/landing/2018/45/",
        licence="unverified: CC BY-NC 4.0 according to third-party catalogues; the official page's statement "
                "could not be confirmed",
        access="open download",
        size_note="dermoscopic JPEG images with one binary lesion mask each (0 background, 255 lesion); training "
                  "images about 5.4 GB, training masks about 1.1 GB",
        citation="N. Codella et al. Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted by "
                 "the International Skin Imaging Collaboration (ISIC). arXiv:1902.03368, 2019.",
        note="Training, validation and test archives (ISIC2018_Task1-2_*_Input, ISIC2018_Task1_*_GroundTruth) "
             "are linked from https://challenge.isic-archive.com/data/. Licence unverified: check the data page "
             "before any use beyond research.",
    ),
    # ---------------------------------------------------------------- road scenes
    ProjectDataset(
        name="cityscapes",
        idea="road scenes",
        task="semantic",
        url="https://www.cityscapes-dataset.com/",
        licence="Cityscapes terms of use (https://www.cityscapes-dataset.com/license/): non-commercial purposes "
                "only (research, teaching, publications, personal experimentation); the data may not be "
                "redistributed",
        access="registration",
        size_note="5,000 images with fine pixel labels and 20,000 with coarse labels, from 50 cities; "
                  "instance-level labels too",
        citation="M. Cordts et al. The Cityscapes Dataset for Semantic Urban Scene Understanding. CVPR 2016.",
        note="Register an account on cityscapes-dataset.com, accept the terms of use, and download the packages "
             "(leftImg8bit, gtFine) once the account is confirmed. The non-commercial wording is quoted from "
             "copies of the licence page; the stored copy of the page itself shows only its first sections.",
    ),
    ProjectDataset(
        name="bdd100k",
        idea="road scenes",
        task="semantic",
        url="https://bdd-data.berkeley.edu/",
        licence="BDD100K License (https://doc.bdd100k.com/license.html): use, copy and modify for educational, "
                "research and not-for-profit purposes; commercial use needs a licence from UC Berkeley",
        access="registration",
        size_note="10,000 images with semantic labels in Cityscapes' classes (a subset of the 100,000 driving "
                  "images); drivable-area labels for all 100,000",
        citation="F. Yu et al. BDD100K: A Diverse Driving Dataset for Heterogeneous Multitask Learning. "
                 "CVPR 2020 (arXiv:1805.04687).",
        note="Register and log in at bdd-data.berkeley.edu, accept the licence on its Download page, then "
             "download the segmentation archives in a browser.",
    ),
    # ---------------------------------------------------------------- cars
    ProjectDataset(
        name="carvana",
        idea="cars (background removal)",
        task="semantic",
        url="https://www.kaggle.com/c/carvana-image-masking-challenge",
        licence="the competition's rules on Kaggle (their data-use clauses are unverified here: read them "
                "before accepting)",
        access="licence-gated",
        size_note="studio photos of cars with one binary car mask each (train.zip and train_masks.zip on the "
                  "Data tab)",
        citation="Carvana Image Masking Challenge, Kaggle, 2017.",
        note="Sign in to Kaggle, open the competition, read and accept its rules on the Rules tab (or via "
             "'Late Submission'), then download from the Data tab or with the Kaggle command-line client; "
             "the rules cannot be accepted through the API. The data-use terms are unverified.",
    ),
    # ---------------------------------------------------------------- SAM or SegFormer on custom data
    ProjectDataset(
        name="ade20k",
        idea="SAM or SegFormer on custom data",
        task="semantic",
        url="https://groups.csail.mit.edu/vision/datasets/ADE20K/",
        licence="ADE20K terms of use (groups.csail.mit.edu/vision/datasets/ADE20K/terms): non-commercial "
                "research and educational purposes; binding on a commercial employer too",
        access="licence-gated",
        size_note="27,574 images (25,574 train, 2,000 test) over 3,688 object categories, with parts; the "
                  "SceneParsing benchmark (150 classes) is the set SegFormer's ADE20K checkpoints are trained on",
        citation="B. Zhou, H. Zhao, X. Puig, T. Xiao, S. Fidler, A. Barriuso, A. Torralba. Semantic "
                 "understanding of scenes through the ADE20K dataset. IJCV 127(3), 302-321, 2019.",
        note="Register on the ADE20K request-data page, wait for approval and accept the terms of use; the "
             "download follows. The terms' wording is quoted from copies of the terms page.",
    ),
    ProjectDataset(
        name="coco_stuff",
        idea="SAM or SegFormer on custom data",
        task="semantic",
        url="https://github.com/nightrome/cocostuff",
        licence="COCO-Stuff annotations: CC BY 4.0; COCO annotations: CC BY 4.0; COCO images: Flickr terms of use",
        access="open download",
        size_note="164K COCO images (train2017 about 18 GB, val2017 about 1 GB) and stuff+thing label maps "
                  "(about 659 MB), 172 classes",
        citation="H. Caesar, J. Uijlings, V. Ferrari. COCO-Stuff: Thing and Stuff Classes in Context. CVPR 2018.",
        note="Images come from cocodataset.org, label maps from the University of Edinburgh (links in the "
             "README). Each image keeps its Flickr owner's licence, listed per image in COCO's annotations.",
    ),
    ProjectDataset(
        name="coco_panoptic",
        idea="SAM or SegFormer on custom data",
        task="panoptic",
        url="https://cocodataset.org/#download",
        licence="annotations CC BY 4.0 (COCO Consortium); images under the Flickr terms of use",
        access="open download",
        size_note="COCO 2017 images (train about 18 GB, val about 1 GB) with panoptic annotations (a PNG per "
                  "image and a JSON of segments)",
        citation="A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollar. Panoptic Segmentation. CVPR 2019; "
                 "T.-Y. Lin et al. Microsoft COCO: Common Objects in Context. ECCV 2014.",
        note="The panoptic annotation archive's name, size and class counts are unverified here: take them from "
             "the download page.",
    ),
    # ---------------------------------------------------------------- your own data (course registry)
    _from_registry(
        "oxford_pet", REGISTRY_REFERENCES["oxford_pet"], idea="your own data", task="semantic",
        note="Its trimaps (pet, background, border) are the layout to copy when you label your own photos: "
             "one mask PNG per image, read with utils.datasets' folder dataset.",
    ),
    _from_registry(
        "penn_fudan", REGISTRY_REFERENCES["penn_fudan"], idea="your own data", task="instance",
        note="Street photos with one mask per pedestrian: a small instance set to rehearse on before labelling "
             "your own objects.",
    ),
    _from_registry(
        "dsb2018_nuclei", REGISTRY_REFERENCES["dsb2018_nuclei"], idea="your own data", task="instance",
        note="The course ships a curated subset (data/nuclei); the full archive shows how your own microscopy "
             "images and per-object masks would be organised.",
    ),
)


def _check_idea(idea) -> None:
    if idea is not None and idea not in IDEAS:
        raise ValueError(f"`idea` must be None or one of {', '.join(repr(i) for i in IDEAS)}, got {idea!r}")


def project_table(idea=None) -> list[dict]:
    """One row per project data set, for a lesson to show (``pandas.DataFrame(project_table())``).

    Parameters
    ----------
    idea : str or None
        Keep only the rows of this idea (one of :data:`IDEAS`); ``None`` keeps all.

    Returns
    -------
    list of dict
        Keys ``name``, ``idea``, ``task``, ``access``, ``licence``, ``url``, ``size``, ``registry``
        (the ``utils.data.REGISTRY`` names a row stands for, comma-separated, or ``""``), ``citation``
        and ``note``, in :data:`PROJECT_DATASETS` order.

    Raises
    ------
    ValueError
        If ``idea`` is not ``None`` and not one of :data:`IDEAS`.
    """
    _check_idea(idea)
    return [
        {
            "name": d.name,
            "idea": d.idea,
            "task": d.task,
            "access": d.access,
            "licence": d.licence,
            "url": d.url,
            "size": d.size_note,
            "registry": ", ".join(REGISTRY_REFERENCES.get(d.name, ())),
            "citation": d.citation,
            "note": d.note,
        }
        for d in PROJECT_DATASETS
        if idea is None or d.idea == idea
    ]


def get_project_dataset(name) -> ProjectDataset:
    """The :class:`ProjectDataset` called ``name``.

    Raises
    ------
    ValueError
        If no entry has that name; the message lists the known names.
    """
    for d in PROJECT_DATASETS:
        if d.name == name:
            return d
    known = ", ".join(d.name for d in PROJECT_DATASETS)
    raise ValueError(f"`name` must be one of {known}, got {name!r}")
