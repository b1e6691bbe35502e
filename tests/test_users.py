"""The signed-in user's profile, and admins listing and changing users, through HTTP."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest

from fantasize.extensions import db
from fantasize.models import User
from tests.test_uploads import GIF, fetch

API = "/api/v1"
USER_KEYS = {
    "id", "email", "username", "role", "phone", "gender", "dateOfBirth", "avatar", "isActive", "lastLoginAt",
    "createdAt", "updatedAt",
}


# The profile


def test_me_renders_every_user_field_and_no_secret(client, factory):
    user = factory.user()
    body = client.get(f"{API}/users/me", headers=factory.headers(user)).json
    assert set(body) == USER_KEYS
    assert body["id"] == user.id and body["email"] == user.email
    assert body["createdAt"].endswith("Z")


def test_avatar_renders_as_its_signed_url(client, factory):
    upload = factory.upload()
    user = factory.user(avatar_id=upload.id)
    avatar = client.get(f"{API}/users/me", headers=factory.headers(user)).json["avatar"]
    assert avatar.startswith(f"{upload.url}?expires=") and "&signature=" in avatar


def test_v2_me_has_the_envelope(client, factory):
    user = factory.user()
    response = client.get("/api/v2/users/me", headers=factory.headers(user))
    assert response.status_code == 200
    assert response.headers["API-Version"] == "v2"
    assert response.json["success"] is True
    assert response.json["meta"]["version"] == "v2"
    assert set(response.json["data"]) == USER_KEYS


def test_patch_me_updates_the_profile(client, factory):
    user = factory.user()
    headers = factory.headers(user)
    changes = {"username": "Grace", "phone": "+1 (555) 010-2030", "gender": "other", "dateOfBirth": "1906-12-09"}
    response = client.patch(f"{API}/users/me", headers=headers, json=changes)
    assert response.status_code == 200
    assert {k: response.json[k] for k in changes} == changes
    cleared = client.patch(f"{API}/users/me", headers=headers, json={"phone": None, "gender": None})
    assert cleared.json["phone"] is None and cleared.json["gender"] is None
    assert cleared.json["username"] == "Grace"


@pytest.mark.parametrize("username", ["O'Brien", "DROP earrings -- 50% off;", "Select your size", "ÆØÅ 名前 😀"])
def test_usernames_round_trip_exactly(client, username):
    created = client.post(f"{API}/auth/register",
                          json={"email": "text@example.com", "password": "long enough", "username": username})
    assert created.status_code == 201
    assert created.json["username"] == username
    token = client.post(f"{API}/auth/login", json={"email": "text@example.com", "password": "long enough"}).json[
        "accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/users/me", headers=headers).json["username"] == username
    patched = client.patch(f"{API}/users/me", headers=headers, json={"username": f"{username}!"})
    assert patched.json["username"] == f"{username}!"


def test_patch_me_cannot_change_email_role_or_password(client, factory):
    headers = factory.headers(factory.user())
    for field, value in (("email", "new@example.com"), ("role", "admin"), ("password", "a new password"),
                         ("isActive", False)):
        response = client.patch(f"{API}/users/me", headers=headers, json={field: value})
        assert response.status_code == 422
        assert response.json["error"]["details"] == {field: ["Unknown field."]}


@pytest.mark.parametrize("changes, field", [
    ({"username": ""}, "username"),
    ({"username": "x" * 51}, "username"),
    ({"username": None}, "username"),
    ({"username": 7}, "username"),
    ({"phone": "call me"}, "phone"),
    ({"phone": "+1234567890123456789012"}, "phone"),
    ({"gender": "dragon"}, "gender"),
    ({"dateOfBirth": "yesterday"}, "dateOfBirth"),
    ({"dateOfBirth": "2999-01-01"}, "dateOfBirth"),
])
def test_patch_me_rejects_bad_values(client, factory, changes, field):
    response = client.patch(f"{API}/users/me", headers=factory.headers(factory.user()), json=changes)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]


def upload_image(client, user_headers, content: bytes = GIF) -> dict:
    response = client.post(f"{API}/uploads", headers=user_headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), "me.gif")})
    assert response.status_code == 201, response.json
    return response.json


def test_patch_me_sets_and_clears_the_avatar(client, factory):
    headers = factory.headers(factory.user())
    picture = upload_image(client, headers)
    response = client.patch(f"{API}/users/me", headers=headers, json={"avatarId": picture["id"]})
    assert response.status_code == 200, response.json
    avatar = response.json["avatar"]
    assert urlsplit(avatar).path == f"{API}/uploads/{picture['storedName']}"
    assert client.get(f"{API}/users/me", headers=headers).json["avatar"].startswith(avatar.partition("?")[0])
    shown = fetch(client, avatar)  # what an <img> tag does: no token
    assert shown.status_code == 200 and shown.data == GIF
    cleared = client.patch(f"{API}/users/me", headers=headers, json={"avatarId": None})
    assert cleared.status_code == 200 and cleared.json["avatar"] is None


def test_the_avatar_is_one_of_your_own_images(client, factory):
    me, someone = factory.user(), factory.user()
    headers = factory.headers(me)
    mine = factory.upload(owner_id=me.id)
    theirs = factory.upload(owner_id=someone.id)
    my_pdf = factory.upload(owner_id=me.id, mime_type="application/pdf", stored_name=f"{'e' * 32}.pdf")
    client.patch(f"{API}/users/me", headers=headers, json={"avatarId": mine.id})
    # Someone else's upload reads exactly like one that does not exist (422: which ids exist is not told).
    for upload_id, message in ((theirs.id, f"No upload {theirs.id} of yours."),
                               (999_999, "No upload 999999 of yours."),
                               (my_pdf.id, f"Upload {my_pdf.id} is not an image.")):
        response = client.patch(f"{API}/users/me", headers=headers, json={"avatarId": upload_id})
        assert response.status_code == 422
        assert response.json["error"]["details"] == {"avatarId": [message]}
    for value in ("1", True, 1.5, -(2**70)):
        response = client.patch(f"{API}/users/me", headers=headers, json={"avatarId": value})
        assert response.status_code == 422 and "avatarId" in response.json["error"]["details"], value
    db.session.expire_all()
    assert db.session.get(User, me.id).avatar_id == mine.id  # every refusal left it alone


def test_registration_takes_no_avatar(client, factory):
    upload = factory.upload()
    response = client.post(f"{API}/auth/register", json={
        "email": "new@example.com", "password": "long enough", "username": "New", "avatarId": upload.id})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"avatarId": ["Unknown field."]}


def test_an_avatar_is_shown_only_to_its_user_and_admins(client, factory):
    user = factory.user()
    headers = factory.headers(user)
    picture = upload_image(client, headers)
    client.patch(f"{API}/users/me", headers=headers, json={"avatarId": picture["id"]})
    path = f"{API}/uploads/{picture['storedName']}"
    assert fetch(client, path).status_code == 404
    assert fetch(client, path, headers=factory.headers(factory.user())).status_code == 404
    admin = factory.headers(factory.admin())
    listed = client.get(f"{API}/users?q={user.email}", headers=admin).json
    assert fetch(client, listed[0]["avatar"]).status_code == 200  # the admin's list gives a working URL too


def test_patch_me_with_a_phone_someone_else_uses_is_409(client, factory):
    factory.user(phone="+15550001")
    me = factory.user(phone="+15550002")
    headers = factory.headers(me)
    assert client.patch(f"{API}/users/me", headers=headers, json={"phone": "+15550001"}).status_code == 409
    assert client.patch(f"{API}/users/me", headers=headers, json={"phone": "+15550002"}).status_code == 200


# Admin: listing users


def test_admin_lists_users_in_id_order_with_pagination(client, factory):
    admin = factory.admin()
    users = [factory.user() for _ in range(4)]
    response = client.get(f"{API}/users?limit=2&page=2", headers=factory.headers(admin))
    assert response.status_code == 200
    assert [u["id"] for u in response.json] == [users[1].id, users[2].id]
    assert response.headers["X-Total-Count"] == "5"
    assert 'rel="prev"' in response.headers["Link"] and 'rel="next"' in response.headers["Link"]


def test_admin_list_filters_by_role_and_search(client, factory):
    admin = factory.admin(email="boss@example.com")
    factory.user(email="ann@example.com", username="Ann")
    bob = factory.user(email="bob@shop.test", username="Bobby 100%")
    headers = factory.headers(admin)
    assert [u["id"] for u in client.get(f"{API}/users?role=admin", headers=headers).json] == [admin.id]
    assert [u["id"] for u in client.get(f"{API}/users?q=SHOP.test", headers=headers).json] == [bob.id]
    assert [u["id"] for u in client.get(f"{API}/users?q=bobby", headers=headers).json] == [bob.id]
    # Wildcards in the search are plain characters.
    assert [u["id"] for u in client.get(f"{API}/users?q=100%25", headers=headers).json] == [bob.id]
    assert client.get(f"{API}/users?q=_", headers=headers).json == []


def test_admin_list_in_v2_has_pagination_meta(client, factory):
    admin = factory.admin()
    factory.user()
    body = client.get("/api/v2/users?limit=1", headers=factory.headers(admin)).json
    assert body["success"] is True and len(body["data"]) == 1
    assert body["meta"]["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}


@pytest.mark.parametrize("query", ["role=superuser", "limit=0", "limit=101", "page=0", "page=abc"])
def test_admin_list_rejects_bad_query_values(client, factory, query):
    response = client.get(f"{API}/users?{query}", headers=factory.headers(factory.admin()))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "BAD_REQUEST"


# Admin: changing users


def test_admin_promotes_a_customer(client, factory):
    admin, user = factory.admin(), factory.user()
    response = client.patch(f"{API}/users/{user.id}", headers=factory.headers(admin), json={"role": "admin"})
    assert response.status_code == 200
    assert response.json["role"] == "admin"
    signed_in = client.post(f"{API}/auth/login", json={"email": user.email, "password": "correct horse battery"})
    assert client.get(f"{API}/users", headers={"Authorization": f"Bearer {signed_in.json['accessToken']}"}
                      ).status_code == 200


def test_admin_cannot_demote_or_deactivate_themself(client, factory):
    admin = factory.admin()
    headers = factory.headers(admin)
    for changes in ({"role": "customer"}, {"isActive": False}):
        response = client.patch(f"{API}/users/{admin.id}", headers=headers, json=changes)
        assert response.status_code == 409
    assert client.get(f"{API}/users/me", headers=headers).json["role"] == "admin"
    assert client.patch(f"{API}/users/{admin.id}", headers=headers, json={"role": "admin"}).status_code == 200


def test_another_admin_can_demote_an_admin(client, factory):
    admin, other = factory.admin(), factory.admin()
    other_headers = factory.headers(other)
    response = client.patch(f"{API}/users/{other.id}", headers=factory.headers(admin), json={"role": "customer"})
    assert response.json["role"] == "customer"
    # The demoted admin's tokens carried the admin role claim; they are revoked.
    assert client.get(f"{API}/users/me", headers=other_headers).status_code == 401


def test_deactivating_a_user_ends_their_sessions_and_sign_in(client, factory):
    admin, user = factory.admin(), factory.user()
    user_headers = factory.headers(user)
    response = client.patch(f"{API}/users/{user.id}", headers=factory.headers(admin), json={"isActive": False})
    assert response.status_code == 200 and response.json["isActive"] is False
    assert client.get(f"{API}/users/me", headers=user_headers).status_code == 401
    login = client.post(f"{API}/auth/login", json={"email": user.email, "password": "correct horse battery"})
    assert login.status_code == 401


def test_admin_patch_validates_and_404s(client, factory):
    headers = factory.headers(factory.admin())
    user = factory.user()
    for changes in ({"role": "superuser"}, {"isActive": "false"}, {"isActive": 0}, {"email": "x@example.com"}):
        assert client.patch(f"{API}/users/{user.id}", headers=headers, json=changes).status_code == 422
    missing = client.patch(f"{API}/users/999999", headers=headers, json={"role": "admin"})
    assert missing.status_code == 404


def test_customers_cannot_change_users(client, factory):
    user, other = factory.user(), factory.user()
    response = client.patch(f"{API}/users/{other.id}", headers=factory.headers(user), json={"role": "admin"})
    assert response.status_code == 403
    assert client.patch(f"{API}/users/{other.id}", json={"role": "admin"}).status_code == 401
