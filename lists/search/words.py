"""Word lists for name normalisation: legal forms, branch words, industry words, Latin legal forms.

All Chinese words are simplified and without punctuation, as they are compared with normalised
names. Adding a word changes the stored `core` of existing rows: re-derive them after an edit.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of `text`."""
    return frozenset(text.split())


# Legal forms and organisation types, stripped from the end of a name, repeatedly
# (…集团股份有限公司 → …集团 → …). 集团 and 股份 go too: short names drop them
# (汇洲智能技术集团股份有限公司 = 汇洲智能, 福瑞股份 = 福瑞医科), so cores meet.
# 控股 stays: it is part of how people name the company (华联控股).
LEGAL_WORDS = _words(
    """
    股份有限公司 有限责任公司 责任有限公司 有限公司 股份公司 责任公司 有限责任 集团公司 总公司 公司 集团 股份
    股份合作公司 股份合作企业 股份合作 有限合伙企业 有限合伙 普通合伙企业 特殊普通合伙 普通合伙 合伙企业
    个人独资企业 独资企业 个体工商户 个体户 农民专业合作社联合社 农民专业合作社 专业合作社 股份经济合作社
    经济合作社 合作社 联合社 总厂 厂
    """
)

# Removed wherever they occur, so a branch's core keeps its parent and its place:
# 中国建设银行股份有限公司佳木斯分行 → 中国建设银行佳木斯.
LEGAL_WORDS_INSIDE = ("股份有限公司", "有限责任公司", "有限公司")

# Branch designations, stripped from the end like legal forms.
BRANCH_WORDS = _words(
    """
    中心支公司 分公司 支公司 子公司 分行 支行 分理处 营业部 营业所 分店 分部 办事处 代表处 分厂 分所 分社
    """
)

# After a region prefix: development zones, towns and sub-districts (宁波梅山保税港区…,
# 五常市兴盛乡…), which GB/T 2260 does not list.
ZONE_OR_TOWN = ("保税港区", "综合保税区", "保税区", "经济技术开发区", "高新技术产业开发区", "开发区", "高新区",
                "新区", "合作区", "工业园区", "园区", "街道", "乡", "镇")  # fmt: skip

# Lone industry words: a query of one of these (plus legal-form words) matches a large share of
# all names (科技, 建筑工程有限公司), so it is refused as too broad.
INDUSTRY_WORDS = _words(
    """
    科技 技术 贸易 商贸 实业 投资 发展 管理 咨询 服务 工程 建筑 建筑工程 建设 建材 装饰 装修 设计 餐饮
    餐饮管理 物流 运输 电子 信息 网络 信息技术 网络科技 软件 文化 传媒 文化传媒 广告 房地产 房地产开发 开发
    置业 地产 物业 物业管理 农业 机械 设备 销售 制造 生产 加工 化工 医药 药业 医疗 器械 食品 养殖 种植
    环保 能源 新能源 材料 新材料 电力 电气 汽车 金融 资产 保险 证券 银行 教育 培训 健康 生物 国际 供应链
    进出口 经营部 商行 中心 工作室 控股 企业 劳务 人力资源 企业管理 商务 电子商务 农民 专业 经营
    """
)

# Latin legal-form words, dropped anywhere in an English name. "group" and "holdings" go for
# the same reason as 集团: they are usually left out when the name is typed.
LATIN_FORM_WORDS = _words(
    """
    co company cos ltd limited inc incorporated corp corporation plc llc llp lp gmbh ag sa nv bv
    pte pty group holding holdings the and of jsc spa srl sarl bhd sdn kk ooo oao zao pjsc
    """
)

# Dropped only at the end, once the words above are gone: "Joint Stock Co." and "Share Co.,
# Ltd." are 股份 (Hubei Mailyard Share Co.,Ltd → hubei mailyard), but "China Stock Exchange" is not.
LATIN_TRAILING_FORM_WORDS = _words("joint stock share shares")
