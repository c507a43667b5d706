"""Sign-in, tokens, the current user, staff accounts and role grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.core.db import SessionDep
from app.identity import personal, service
from app.identity.auth import CurrentPrincipal, GrantIssuer, StaffAccountCreator
from app.identity.models import (
    AccountClosed,
    GrantCreate,
    GrantPublic,
    PasswordLogin,
    PersonalData,
    PhoneBind,
    PhoneBindResult,
    RefreshRequest,
    StaffCreate,
    TokenPair,
    UserPublic,
    WechatLogin,
)
from app.kit.errors import error_responses
from app.wechat.client import WechatClient, get_wechat

router = APIRouter(prefix="/api/v1", tags=["identity"])
Wechat = Annotated[WechatClient, Depends(get_wechat)]


@router.post("/auth/wechat/login", summary="Sign in with a wx.login code (refused codes throttled per address)", response_model=TokenPair, responses=error_responses(400, 403, 422, 429, 502, 503))
def wechat_login(session: SessionDep, wechat: Wechat, data: WechatLogin, request: Request):
    return service.wechat_login(session, wechat, data.code, request.client.host if request.client else "")


@router.post(
    "/auth/wechat/phone",
    summary="Bind my phone number (getPhoneNumber code) and join my household; answers new tokens that carry it",
    description="The access token in use does not name the households just joined: the answer's `tokens` replace the "
    "caller's. Send the current `refresh_token` to have it rotated (one session); without it a new session's pair is issued.",
    response_model=PhoneBindResult,
    responses=error_responses(400, 401, 422, 502, 503),
)
def bind_phone(session: SessionDep, wechat: Wechat, principal: CurrentPrincipal, data: PhoneBind):
    return service.bind_phone(session, wechat, principal, data.code, data.refresh_token)


@router.post("/auth/password/login", summary="Staff sign-in with username and password (throttled per account and address)", response_model=TokenPair, responses=error_responses(401, 422, 429, 503))
def password_login(session: SessionDep, data: PasswordLogin, request: Request):
    return service.password_login(session, data.username, data.password, request.client.host if request.client else "")


@router.post(
    "/auth/refresh",
    summary="Exchange a refresh token for new tokens (rotation)",
    description="Access tokens live `expires_in` seconds (15 minutes by default); refresh tokens 30 days and work once: "
    "each call answers a new pair and retires the token sent. The same token sent again within 30 seconds "
    "(the answer was lost) answers the same new pair; later, it is taken for a stolen copy: the session is revoked "
    "(`refresh_reused`) and the user signs in again. On 401 `token_expired` from any route, refresh and retry once.",
    response_model=TokenPair,
    responses=error_responses(401, 422),
)
def refresh(session: SessionDep, data: RefreshRequest):
    return service.refresh(session, data.refresh_token)


@router.post("/auth/logout", summary="Sign out: revoke a refresh token's family and the user's access tokens", status_code=204, responses=error_responses(422))
def logout(session: SessionDep, data: RefreshRequest):
    service.logout(session, data.refresh_token)
    return Response(status_code=204)


@router.get("/me", summary="Who am I: roles and households", response_model=UserPublic, responses=error_responses(401))
def me(session: SessionDep, principal: CurrentPrincipal):
    return service.me(session, principal)


@router.get("/me/data", summary="Everything held about me (个人信息查阅)", response_model=PersonalData, responses=error_responses(401))
def my_data(session: SessionDep, principal: CurrentPrincipal):
    return personal.personal_data(session, principal)


@router.post(
    "/me/close",
    summary="Close my account (注销): WeChat binding, phone, name, memberships and sessions removed; the household's passbook stays",
    response_model=AccountClosed,
    responses=error_responses(401, 409),
)
def close_my_account(session: SessionDep, principal: CurrentPrincipal):
    return personal.close_account(session, principal)


@router.post("/staff", summary="Create a staff account (password sign-in)", status_code=201, response_model=UserPublic, responses=error_responses(401, 403, 409, 422))
def create_staff(session: SessionDep, principal: StaffAccountCreator, data: StaffCreate):
    return service.create_staff(session, principal, data)


@router.post("/grants", summary="Grant a role in a scope", status_code=201, response_model=GrantPublic, responses=error_responses(400, 401, 403, 404, 422))
def grant_role(session: SessionDep, principal: GrantIssuer, data: GrantCreate):
    return service.grant_role(session, principal, data)


@router.post("/grants/revoke", summary="Revoke a role in a scope", status_code=204, responses=error_responses(400, 401, 403, 404, 422))
def revoke_role(session: SessionDep, principal: GrantIssuer, data: GrantCreate):
    service.revoke_role(session, principal, data)
    return Response(status_code=204)
