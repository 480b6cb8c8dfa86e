"""A realistic week of the sample street, played through the real Service on a fake clock.

``lianhu demo --seed`` calls ``seed``: residents report problems in their
groups, handlers acknowledge, note, resolve, hand over and escalate, residents
confirm, reopen and rate, deadlines pass and escalate — each step as a message
in the simulator at its hour of the past week, handled by ``Service`` and
delivered by the simulator's ``Sender``, so tickets, histories, chats and rq
jobs are exactly what a week of use would have left. Nothing is written to
Redis directly. At the end every ticket state is present.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.deadlines import Policy
from bot.core.org import NodeKind, OrgTree, Role
from bot.live import LiveConfig
from bot.redis_clients import async_client, sync_client
from bot.scheduling import RqScheduler
from bot.sender import Sender
from bot.services import Service
from bot.settings import Settings
from bot.storage import keys
from bot.storage.redis import RedisStore
from bot.web.directory import sim_chat
from bot.web.history import ChatHistory
from bot.web.simulator import SimGateway, Simulator

HOUR = 3600.0
# Who acts for a node of each kind when the script does not name someone.
HANDLER_OF = {
    NodeKind.HOUSEHOLD: Role.HOUSEHOLD_LEADER,
    NodeKind.GRID: Role.GRID_WORKER,
    NodeKind.VILLAGE: Role.VILLAGE_CADRE,
    NodeKind.STREET: Role.STREET_STAFF,
    NodeKind.DEPARTMENT: Role.DEPARTMENT_STAFF,
}
RESIDENT_VERBS = {"确认", "重开", "评价", "/confirm", "/reopen", "/rate"}


class AlreadySeeded(Exception):
    """The database already holds tickets: seeding would mix two histories."""


@dataclass(frozen=True)
class Step:
    """Something said ``after`` hours after its report; ``{id}`` is the report's ticket.

    ``by`` is a person id; None means the reporter for a resident's command, and a
    handler of the node that holds the ticket at that moment for any other.
    """

    after: float
    text: str
    by: str | None = None


@dataclass(frozen=True)
class Report:
    """A message posted ``ago`` hours before now by a person in their household group."""

    ago: float
    person: str
    text: str
    steps: tuple[Step, ...] = ()
    chatter: bool = False  # the bot must stay silent


S = Step
# fmt: off
WEEK: tuple[Report, ...] = (
    Report(165, "p-chen-zhiqiang", "大家早晨", chatter=True),
    Report(160, "p-chen-zhiqiang", "小区门口的路灯坏了一个星期了，晚上很黑", (
        S(3, "受理 {id}"), S(5, "备注 {id} 已联系物业电工，明天上午来换"),
        S(26, "办结 {id} 已更换灯泡和镇流器，路灯恢复照明"), S(27, "确认 {id}"),
        S(27.2, "评价 {id} 5"),
    )),
    Report(150, "p-huang-meiling", "今天一直没有自来水，什么时候来水", (
        S(1, "受理 {id}"), S(5, "办结 {id} 水管爆裂已抢修完毕，恢复供水"),
    )),
    Report(140, "p-he-shufen", "小区的垃圾桶都满了，好几天没人来清", (
        S(6, "受理 {id}"), S(30, "办结 {id} 已通知保洁公司清运，之后每天清一次"),
        S(32, "确认 {id}"),
    )),
    Report(131, "p-luo-jiahao", "谢谢网格员，路灯已经修好了", chatter=True),
    Report(130, "p-liang-guohua", "楼下的烧烤档每天搞到凌晨，吵得我们没法睡", (
        S(60, "受理 {id}"), S(70, "办结 {id} 已联合执法队上门劝导，承诺晚上十一点前收档"),
        S(75, "确认 {id}"),
    )),
    Report(120, "p-au-kamtim", "屋企冇電成晚，雪櫃啲嘢都壞晒", (
        S(2, "受理 {id}"), S(10, "办结 {id} 供电所已抢修，恢复供电"),
        S(12, "重开 {id} 仲係冇電，淨係得一半插蘇有電"), S(13, "受理 {id}"),
        S(20, "办结 {id} 更换了入户开关和保险，已试过全屋用电正常"), S(21, "确认 {id}"),
        S(21.1, "评价 {id} 4"),
    )),
    Report(110, "p-zeng-xiaoyan", "今晚社区有电影放映，欢迎大家来看", chatter=True),
    Report(100, "p-mark-wilson", "A car is blocking the fire hydrant and the driveway", (
        S(1, "受理 {id}"), S(3, "办结 {id} 已联系车主挪车，并请交警贴了告知单"),
        S(4, "/confirm {id}"),
    )),
    Report(96, "p-lin-weiming", "工厂三个月没发工资了，老板说没钱", (
        S(1, "受理 {id}"), S(1.5, "转派 {id} labour 请劳动保障所跟进欠薪"),
        S(2.5, "受理 {id}"), S(20, "备注 {id} 已约谈企业负责人，核实拖欠 23 名工人工资"),
        S(43, "办结 {id} 企业承诺分两期发放，第一期已到账"),
    )),
    Report(80, "p-zhang-lihua", "有人在楼顶违规搭建了一个彩钢房", (
        S(3, "驳回 {id} 经执法队核实，是已审批的临时消防设备房"),
    )),
    Report(72, "p-deng-jiahui", "水壓好弱，三樓以上冇水用", (
        S(5, "受理 {id}"), S(20, "办结 {id} 加压泵故障已维修，水压恢复"), S(22, "确认 {id}"),
    )),
    Report(60, "p-luo-jiahao", "楼下的独居老人几天没出门了，电话也不接", (
        S(0.5, "受理 {id}"), S(1.5, "备注 {id} 已上门探望，老人身体不适，已联系家属陪同就医"),
        S(3, "办结 {id} 家属已接老人住院，社区每周回访"), S(4, "确认 {id}"),
    )),
    Report(50, "p-huang-meiling", "婆媳关系很差，天天吵，老公夹在中间", (
        S(2, "受理 {id}", by="p-wen-runsheng"),
    )),
    Report(45, "p-au-kamtim", "請問居住證到期了點樣續期", (
        S(2, "办结 {id} 带身份证和租房合同到南岸社区党群服务中心一楼办理，当场可取"),
        S(3, "确认 {id}"),
    )),
    Report(40, "p-he-shufen", "我们这栋楼又停电了，一天停三次", (
        S(1, "受理 {id}"), S(6, "办结 {id} 供电所已更换老化线路，今晚起恢复正常"),
    )),
    Report(39.5, "p-ye-huizhen", "停电了，整栋楼都没电"),
    Report(39, "p-cai-yongkang", "又停電，搞咩呀"),
    Report(30, "p-chen-zhiqiang", "楼道的路灯坏了，晚上上下楼很危险", (
        S(5, "办结 {id} 已更换楼道灯"), S(7, "重开 {id} 只换了三楼的，五楼还是不亮"),
    )),
    Report(30, "p-wu-bixia", "5栋地下车库着火了，快叫消防", (
        S(0.1, "受理 {id}"), S(1.5, "办结 {id} 消防已扑灭明火，无人员伤亡，车库已通风排烟"),
        S(2, "确认 {id}"), S(2.1, "评价 {id} 5"),
    )),
    Report(26, "p-zeng-xiaoyan", "小区门口下水道堵了，污水溢出来了", (
        S(0.5, "转派 {id} 胡国栋 请安排疏通"), S(1.5, "受理 {id}", by="p-hu-guodong"),
    )),
    Report(14, "p-mai-shaofang", "整栋楼冇煤气，煮唔到饭"),
    Report(8, "p-feng-jianjun", "后面那条河涌边上堆满了生活垃圾，臭气熏天", (
        S(1, "受理 {id}"), S(2, "备注 {id} 今天下午垃圾车会过来"),
    )),
    Report(6, "p-deng-xiuying", "隔壁工地周日也在施工，电锯声响个不停", (
        S(1, "上报 {id} 施工方不听劝，需要村委协调"),
    )),
    Report(5, "p-mark-wilson", "Good morning neighbours!", chatter=True),
    Report(3, "p-huang-meiling", "小区电梯坏了一周了，物业说要等厂家"),
    Report(2, "p-mark-wilson", "The lift in block 2 has been broken since Monday"),
)
# fmt: on


class FakeClock:
    """The seed's time: set by the script, read by the Service and the chat history."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def seed(settings: Settings, redis_url: str, now: float | None = None) -> Counter[str]:
    """Play the week that ends at ``now`` on an empty database; return tickets by state."""
    end = time.time() if now is None else now
    clock = FakeClock(end - 7 * 24 * HOUR)
    config = LiveConfig(settings.rules_dir, settings.org_file, Policy(scale=1.0))
    client = async_client(redis_url)
    sync = sync_client(redis_url)
    try:
        store = RedisStore(client)
        if await store.all_ids():
            raise AlreadySeeded("the database already holds tickets")
        service = Service(store, config, RqScheduler(sync, settings.queue), clock)
        history = ChatHistory(client, clock)
        week = _Week(
            service, Simulator(service, history, clock), Sender(client, SimGateway(history)), clock
        )
        await week.play(WEEK, end)
        # The week's answers counted against each handler's allowance of answers per minute
        # (bot.core.pacing) in real time: without this, whoever handled much of the week
        # would get no answer (not even a sign-in link) for the demo's first minute.
        async for key in client.scan_iter(match=keys.pace("*")):
            await client.delete(key)
        tickets = await store.get_many(await store.all_ids())
        return Counter(t.state.value for t in tickets)
    finally:
        await client.aclose()
        sync.close()


class _Week:
    def __init__(
        self, service: Service, simulator: Simulator, sender: Sender, clock: FakeClock
    ) -> None:
        self.service = service
        self.simulator = simulator
        self.sender = sender
        self.clock = clock

    @property
    def tree(self) -> OrgTree:
        return self.service.config.tree

    async def play(self, reports: Sequence[Report], end: float) -> None:
        """Post every report and step at its time, letting deadlines fall due in between."""
        plan: list[tuple[float, int, int]] = []  # (when, report, step or -1)
        for i, report in enumerate(reports):
            start = end - report.ago * HOUR
            plan.append((start, i, -1))
            plan += [(start + s.after * HOUR, i, j) for j, s in enumerate(report.steps)]
        ids: dict[int, str] = {}
        for when, i, j in sorted(plan):
            if when > end:
                raise ValueError(f"report {i}: step {j} is after the end of the week")
            await self.deadlines_until(when)
            self.clock.now = when
            report = reports[i]
            if j < 0:
                ids[i] = await self.report(report)
            else:
                await self.step(report, report.steps[j], ids[i])
            await self.sender.drain()
        await self.deadlines_until(end)
        self.clock.now = end

    async def report(self, report: Report) -> str:
        person = self.tree.people[report.person]
        chat = sim_chat(self.tree.nodes[person.scope])
        assert chat is not None
        said = await self.simulator.say(person.id, chat, report.text)
        status, ticket = said.handled.status, said.handled.ticket
        if report.chatter:
            if status != "ignored":
                raise RuntimeError(f"chatter {report.text!r} was taken as a report ({status})")
            return ""
        if status not in ("opened", "joined") or ticket is None:
            raise RuntimeError(f"report {report.text!r} opened no ticket ({status})")
        return ticket

    async def step(self, report: Report, step: Step, ticket_id: str) -> None:
        ticket = await self.service.store.get(ticket_id)
        assert ticket is not None
        text = step.text.format(id=ticket_id)
        if step.by is not None:
            person = self.tree.people[step.by]
        elif text.split()[0] in RESIDENT_VERBS:
            person = self.tree.people[report.person]
        else:
            node = self.tree.nodes[ticket.node]
            role = HANDLER_OF[node.kind]
            person = next(
                p for p in self.tree.people.values() if p.role is role and p.scope == node.id
            )
        node = self.tree.nodes[person.scope if text.split()[0] in RESIDENT_VERBS else ticket.node]
        chat = sim_chat(node)
        assert chat is not None
        said = await self.simulator.say(person.id, chat, text)
        if said.handled.status != "done":
            raise RuntimeError(f"ticket {ticket_id}: {text!r} by {person.id}: {said.handled}")

    async def deadlines_until(self, until: float) -> None:
        """Let every deadline due by ``until`` fire, in order, each a second after its time."""
        for _ in range(1000):
            due = await self.service.store.due(until)
            if not due:
                return
            ticket_id, stage, kind, when = min(due, key=lambda d: d[3])
            self.clock.now = max(self.clock.now, when + 1.0)
            await self.service.handle_deadline(ticket_id, stage, kind)
            await self.sender.drain()
        raise RuntimeError("deadlines kept falling due: the seed is looping")
