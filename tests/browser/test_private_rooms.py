"""Private rooms in real Chromium: create, invite, members, leave, remove, delete; by keyboard, and at 390 px."""
import re

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser


def create_private(someone, room):
    """Create a private room from the lobby's form, by keyboard; its settings page."""
    page = someone.page
    page.goto(f"{someone.base_url}/")
    someone.wait_online()
    page.get_by_label("Private room name").fill(room)
    page.get_by_label("Private room name").press("Enter")
    page.wait_for_url(f"{someone.base_url}/room/{room}/settings")
    expect(page.locator("#private-panel")).to_be_visible()
    return page


def invite(page, user):
    page.get_by_label("Invite a member by username").fill(user)
    page.get_by_label("Invite a member by username").press("Enter")
    expect(page.locator(f'#room-member-list li[data-member="{user}"]')).to_be_visible()


def test_a_private_room_is_created_an_invitee_sees_it_and_its_members_and_the_owner_removes_them(person):
    ana, bo = person("ana"), person("bo")
    bo.wait_online()  # bo's lobby is open: the invitation reaches it live
    settings = create_private(ana, "team")
    expect(settings.locator("#room-owner")).to_have_text(f"Owner: {ana.name}")
    expect(settings.locator("#room-member-list li")).to_have_count(1)
    invite(settings, bo.name)
    expect(settings.locator("#settings-status")).to_have_text(f"{bo.name} is a member of #team now.")

    expect(bo.page.locator('#room-rows tr[data-room="team"]')).to_be_visible()  # listed to bo now
    bo_settings = bo.page.context.new_page()
    bo_settings.goto(f"{bo.base_url}/room/team/settings")
    expect(bo_settings.locator("#room-member-list li")).to_have_text([f"{ana.name} (owner)", bo.name])
    expect(bo_settings.locator("#invite-form")).to_be_hidden()  # only the owner invites or removes
    expect(bo_settings.get_by_role("button", name="Remove")).to_have_count(0)
    expect(bo_settings.get_by_role("button", name="Leave this room")).to_be_visible()
    bo_settings.close()

    bo_room = bo.open_room("team")
    bo.say("hello team")
    expect(bo.message("hello team", status="delivered")).to_have_count(1)

    remove = settings.get_by_role("button", name=f"Remove {bo.name} from #team")
    remove.focus()
    settings.keyboard.press("Enter")
    expect(settings.locator("#room-member-list li")).to_have_count(1)
    expect(bo_room.locator("#room-removed")).to_contain_text(f"{ana.name} removed you from #team.")
    expect(bo_room.locator("#composer-text")).to_be_disabled()
    bo_room.goto(f"{bo.base_url}/")
    expect(bo_room.locator('#room-rows tr[data-room="team"]')).to_have_count(0)


def test_a_member_leaves_and_the_owner_deletes_the_room_while_a_member_is_in_it(person):
    ana, bo, cy = person("ana"), person("bo"), person("cy")
    settings = create_private(ana, "crew")
    invite(settings, bo.name)
    invite(settings, cy.name)

    bo.page.goto(f"{bo.base_url}/room/crew/settings")
    leave = bo.page.get_by_role("button", name="Leave this room")
    leave.click()
    expect(bo.page.locator("#settings-status")).to_have_text("Leave #crew? Press again to confirm.")
    bo.page.get_by_role("button", name="Press again to leave").click()
    bo.page.wait_for_url(f"{bo.base_url}/")
    expect(bo.page.locator('#room-rows tr[data-room="crew"]')).to_have_count(0)
    settings.reload()
    expect(settings.locator("#room-member-list li")).to_have_count(2)

    cy_room = cy.open_room("crew")
    delete = settings.get_by_role("button", name="Delete this room")
    delete.focus()
    settings.keyboard.press("Enter")
    expect(settings.get_by_role("button", name="Press again to delete")).to_be_focused()
    settings.keyboard.press("Enter")
    settings.wait_for_url(f"{ana.base_url}/")
    expect(cy_room.locator("#room-removed")).to_contain_text(f"{ana.name} deleted #crew.")
    cy_room.goto(f"{cy.base_url}/room/crew/settings")
    expect(cy_room.locator("#settings-status")).to_have_text(re.compile("deleted"))


def test_the_settings_page_fits_a_390_px_screen(person):
    ana = person("ana", viewport={"width": 390, "height": 844})
    settings = create_private(ana, "small")
    invite(settings, ana.name)  # inviting oneself again changes nothing
    expect(settings.locator("#room-member-list li")).to_have_count(1)
    assert settings.evaluate("() => document.documentElement.scrollWidth") <= 390
    for control in ("#invite-user", "#delete-room"):
        box = settings.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (control, box)
    lobby = ana.page
    lobby.goto(f"{ana.base_url}/")
    assert lobby.evaluate("() => document.documentElement.scrollWidth") <= 390
    room = ana.open_room("small")
    link = room.get_by_role("link", name="Members", exact=True)
    box = link.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    assert room.evaluate("() => document.documentElement.scrollWidth") <= 390
    link.focus()
    room.keyboard.press("Enter")
    room.wait_for_url(f"{ana.base_url}/room/small/settings")
    assert ana.errors == []
