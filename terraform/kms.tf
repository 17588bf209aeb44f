# The deployment's own KMS key (issue 30 item 9): it seals the edge policy's webhook secrets on
# the connection rows (shared/httptunnel/sealed.py) and encrypts the SSM SecureStrings Terraform
# generates (the agent JWT secret, the request-id keys) instead of the account-wide aws/ssm key.
#
# Who may do what is said by the key policy alone, role by role (a principal named in a key
# policy needs no IAM statement; the functions' roles carry matching statements all the same,
# which the contract test holds to what the code calls):
#   - the account (IAM) administers the key, and may encrypt and decrypt only through SSM and
#     only the parameters below (Terraform writes them; `make token` reads the JWT secret);
#     never the sealed webhook secrets, and no kms:CreateGrant to hand itself that right;
#   - connect encrypts webhook secrets, with an encryption context naming the row
#     ({"tunnel": id, "connection": id}); forward and forward_stream decrypt them with that context;
#   - connect decrypts the JWT secret, forward/forward_stream/response the request-id keys, each
#     only through SSM (kms:ViaService) and only its own parameters (PARAMETER_ARN context).
# Every other role of the account, cleanup's, stream_notifier's and disconnect's included, is
# refused every use of the key: a reader of the table sees ciphertext.
#
# Cost: $1 a month, $1 more per yearly rotation (capped after the second: at most $3), and
# $0.03 per 10,000 requests beyond the free 20,000 a month (https://aws.amazon.com/kms/pricing/);
# README.md "Security model" counts the requests.

locals {
  kms_account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  # Static keys: a computed key (module.functions[fn]) would make the key wait for whole modules, a cycle.
  kms_role_arns = {
    connect        = module.functions["connect"].role_arn
    forward        = module.functions["forward"].role_arn
    forward_stream = module.functions["forward_stream"].role_arn
    response       = module.functions["response"].role_arn
  }
  kms_ssm_service = "ssm.${var.aws_region}.amazonaws.com"
  # Built from names, not from the parameters' own arn attributes: those depend on this key.
  kms_jwt_parameter_arn = "arn:${data.aws_partition.current.partition}:ssm:${var.aws_region}:${data.aws_caller_identity.current.account_id}:parameter/${var.name_prefix}/agent-jwt-secret"
  kms_jwt_parameters    = local.generate_jwt_secret ? [local.kms_jwt_parameter_arn] : []
  kms_id_key_parameters = local.generate_request_id_key ? local.request_id_key_arns : []
  kms_parameters        = concat(local.kms_jwt_parameters, local.kms_id_key_parameters)

  # Who may use the key through SSM, for which of the parameters it encrypts.
  kms_ssm_uses = {
    AccountWritesAndReadsItsParametersThroughSsm = { principals = [local.kms_account_root], actions = ["kms:Decrypt", "kms:Encrypt"], parameters = local.kms_parameters }
    ConnectReadsTheJwtSecretThroughSsm           = { principals = [local.kms_role_arns["connect"]], actions = ["kms:Decrypt"], parameters = local.kms_jwt_parameters }
    RequestIdKeysThroughSsm                      = { principals = [for fn in ["forward", "forward_stream", "response"] : local.kms_role_arns[fn]], actions = ["kms:Decrypt"], parameters = local.kms_id_key_parameters }
  }

  # The sealed webhook secrets' context: exactly these keys (httptunnel.names.SEALED_CONTEXT_*).
  kms_sealed_context = {
    "ForAllValues:StringEquals" = { "kms:EncryptionContextKeys" = ["connection", "tunnel"] }
    "Null"                      = { "kms:EncryptionContext:tunnel" = "false", "kms:EncryptionContext:connection" = "false" }
  }

  kms_key_policy = {
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid       = "AccountAdministersTheKey"
          Effect    = "Allow"
          Principal = { AWS = local.kms_account_root }
          Action = [
            "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
            "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy",
            "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
            "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant",
            "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource",
            "kms:UpdateAlias", "kms:UpdateKeyDescription",
          ]
          Resource = "*"
        },
        {
          Sid       = "ConnectSealsWebhookSecrets"
          Effect    = "Allow"
          Principal = { AWS = local.kms_role_arns["connect"] }
          Action    = "kms:Encrypt"
          Resource  = "*"
          Condition = local.kms_sealed_context
        },
        {
          Sid       = "ForwardOpensWebhookSecrets"
          Effect    = "Allow"
          Principal = { AWS = [local.kms_role_arns["forward"], local.kms_role_arns["forward_stream"]] }
          Action    = "kms:Decrypt"
          Resource  = "*"
          Condition = local.kms_sealed_context
        },
      ],
      [for sid, use in local.kms_ssm_uses : {
        Sid       = sid
        Effect    = "Allow"
        Principal = { AWS = use.principals }
        Action    = use.actions
        Resource  = "*"
        Condition = {
          StringEquals = { "kms:ViaService" = local.kms_ssm_service, "kms:EncryptionContext:PARAMETER_ARN" = use.parameters }
        }
      } if length(use.parameters) > 0],
    )
  }

  # What each function's role says about the key (the key policy above is what binds it).
  kms_statements = {
    connect        = [{ sid = "SecretsKey", actions = ["kms:Encrypt", "kms:Decrypt"], resources = [aws_kms_key.secrets.arn] }]
    forward        = [{ sid = "SecretsKey", actions = ["kms:Decrypt"], resources = [aws_kms_key.secrets.arn] }]
    forward_stream = [{ sid = "SecretsKey", actions = ["kms:Decrypt"], resources = [aws_kms_key.secrets.arn] }]
    response       = [{ sid = "SecretsKey", actions = ["kms:Decrypt"], resources = [aws_kms_key.secrets.arn] }]
  }
  kms_environment = {
    connect        = { SECRETS_KMS_KEY_ID = aws_kms_key.secrets.arn }
    forward        = { SECRETS_KMS_KEY_ID = aws_kms_key.secrets.arn }
    forward_stream = { SECRETS_KMS_KEY_ID = aws_kms_key.secrets.arn }
  }
}

resource "aws_kms_key" "secrets" {
  description             = "${var.name_prefix}: webhook secrets on connection rows, and the generated SSM SecureStrings"
  enable_key_rotation     = true
  deletion_window_in_days = 7 # what it protects lives at most 2 h (rows) or is destroyed with it (parameters)
  policy                  = jsonencode(local.kms_key_policy)
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name_prefix}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}
