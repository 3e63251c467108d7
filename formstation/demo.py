"""A synthetic but realistic roster for the demo, tests and benchmarks (deterministic by seed).

Schools of several levels so that every age rule is exercised: a kindergarten class (under 6,
no photo needed), primary and middle-school classes (under 16, guardian required) and a senior
class (16 and over, applicant signs). A few names carry characters outside GB 2312 (冷僻字).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np

from formstation import idnumber

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉鑫宇浩然欣怡子涵梓萱一诺雨泽俊熙思远嘉怡晨阳佳琪梦瑶志豪博文天佑诗涵若曦"
RARE = "堃喆玥珺瑄昇燊淏"  # outside GB 2312
REGIONS = ("450481", "450403", "450406", "440113", "310113", "360702")
BANKS = ("中国工商银行", "中国农业银行", "中国建设银行", "中国银行", "广西北部湾银行")
CAMPAIGN = date(2026, 9, 1)

# (school, class, age at campaign date)
DEMO_CLASSES = (
    ("梧州市第一实验幼儿园", "大班(1)班", 5),
    ("梧州市新兴小学", "三年级(2)班", 8),
    ("梧州市第十中学", "初二(3)班", 13),
    ("梧州高级中学", "高二(1)班", 16),
)
HEADER = ["学校", "班级", "姓名", "性别", "身份证号码", "学籍号", "开户银行", "照片"]


def _name(rng: np.random.Generator, rare_rate: float) -> str:
    s = SURNAMES[rng.integers(len(SURNAMES))]
    n = 1 + int(rng.random() < 0.7)
    given = "".join(GIVEN[rng.integers(len(GIVEN))] for _ in range(n))
    if rng.random() < rare_rate:
        given = given[:-1] + RARE[rng.integers(len(RARE))]
    return s + given


def _birth(rng: np.random.Generator, age: int) -> date:
    # born between (age+1) and age years before the campaign date
    start = date(CAMPAIGN.year - age - 1, CAMPAIGN.month, CAMPAIGN.day).toordinal() + 1
    end = date(CAMPAIGN.year - age, CAMPAIGN.month, CAMPAIGN.day).toordinal()
    return date.fromordinal(int(rng.integers(start, end + 1)))


def roster_rows(seed: int = 1, per_class: int = 8, classes=DEMO_CLASSES, rare_rate: float = 0.05) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows, used = [], set()
    for ci, (school, cls, age) in enumerate(classes):
        for k in range(per_class):
            while True:
                born = _birth(rng, age)
                male = bool(rng.random() < 0.5)
                seq = int(rng.integers(0, 500)) * 2 + (1 if male else 0)
                idn = idnumber.make(REGIONS[rng.integers(len(REGIONS))], born, seq)
                if idn not in used:
                    used.add(idn)
                    break
            rows.append([school, cls, _name(rng, rare_rate), "男" if male else "女", idn,
                         f"G{idn[:6]}{ci:02d}{k + 1:04d}", BANKS[rng.integers(len(BANKS))], ""])
    return rows


def write_roster(path: Path, seed: int = 1, per_class: int = 8, classes=DEMO_CLASSES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(roster_rows(seed, per_class, classes))
    return path


SCHOOL_KINDS = (("幼儿园", "大班({k})班", 5), ("小学", "{g}年级({k})班", 6), ("中学", "初{g}({k})班", 12),
                ("高级中学", "高{g}({k})班", 15))
CITY = ("梧州市", "岑溪市", "藤县", "苍梧县", "蒙山县")
NUMERALS = "一二三四五六"


def campaign_classes(n_classes: int) -> tuple[tuple[str, str, int], ...]:
    """`n_classes` (school, class, age) triples spread over every school level, deterministic."""
    out = []
    for i in range(n_classes):
        kind, pattern, base_age = SCHOOL_KINDS[i % len(SCHOOL_KINDS)]
        school = f"{CITY[(i // len(SCHOOL_KINDS)) % len(CITY)]}第{(i // 20) + 1}{kind}"
        grade = (i // len(SCHOOL_KINDS)) % (1 if base_age == 5 else 3)
        out.append((school, pattern.format(g=NUMERALS[grade], k=i + 1), base_age + grade))
    return tuple(out)
