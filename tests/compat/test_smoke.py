from tests.factories import body, leads_of, make_account, make_campaign


async def test_a_valid_lead_is_stored_and_answered(client, sessionmaker):
    await make_account(sessionmaker)
    await make_campaign(sessionmaker)
    response = await client.post("/ca_apis/AddCampaignData", json=body(Name="Asha"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "Success",
        "message": "SuccessFully Updated Progressive Campaign",
    }
    [lead] = await leads_of(sessionmaker)
    assert (lead.phone_number, lead.name, lead.priority) == ("9876543210", "Asha", 1)
