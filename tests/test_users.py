"""The signed-in user's profile, and admins listing and changing users, through HTTP."""

from __future__ import annotations

import pytest

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


def test_avatar_renders_as_its_url(client, factory):
    upload = factory.upload()
    user = factory.user(avatar_id=upload.id)
    assert client.get(f"{API}/users/me", headers=factory.headers(user)).json["avatar"] == upload.url


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
